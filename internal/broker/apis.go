package broker

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// api is one served Kafka API. Every handler file registers its key and
// version range here from init; ApiVersions is built from this table, so
// what we advertise is exactly what we serve.
type api struct {
	key      int16
	min, max int16
	// advMin is the minimum advertised in ApiVersions when it differs
	// from min (Produce, see 00_produce.go).
	advMin int16
	handle func(c *conn, inf *inflight, req kmsg.Request)
}

var apis = map[int16]*api{}

func lookupAPI(key int16) *api { return apis[key] }

// register adds a synchronous handler: it runs on the connection's reader
// goroutine and its response is queued in request order.
func register[Req kmsg.Request, Resp kmsg.Response](key, min, max int16, fn func(c *conn, v int16, req Req) Resp) *api {
	a := &api{key: key, min: min, max: max, advMin: min}
	a.handle = func(c *conn, inf *inflight, req kmsg.Request) {
		resp := fn(c, inf.hdr.Version, req.(Req))
		inf.reply(resp)
	}
	apis[key] = a
	return a
}

// registerRaw adds a handler that completes inf itself, possibly later
// from another goroutine (c.goAsync).
func registerRaw(key, min, max int16, fn func(c *conn, inf *inflight, req kmsg.Request)) *api {
	a := &api{key: key, min: min, max: max, advMin: min, handle: fn}
	apis[key] = a
	return a
}

// apiVersionKeys lists the served APIs in key order.
func apiVersionKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(apis))
	for _, a := range apis {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.advMin, a.max
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ApiKey < keys[j].ApiKey })
	return keys
}
