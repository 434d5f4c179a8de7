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
	// on says which listeners serve it (onBroker, onController).
	on uint8
}

// Listener kinds: client (broker) listeners and the controller listener
// serve different sets of APIs, as in Kafka.
const (
	onBroker uint8 = 1 << iota
	onController
)

// alsoController makes a broker API served on the controller listener too.
func (a *api) alsoController() *api { a.on |= onController; return a }

// controllerOnly makes an API served on the controller listener only.
func (a *api) controllerOnly() *api { a.on = onController; return a }

var apis = map[int16]*api{}

// lookupAPI returns the API served under key on a kind of listener.
func lookupAPI(key int16, on uint8) *api {
	if a := apis[key]; a != nil && a.on&on != 0 {
		return a
	}
	return nil
}

// register adds a synchronous handler: it runs on the connection's reader
// goroutine and its response is queued in request order.
func register[Req kmsg.Request, Resp kmsg.Response](key, min, max int16, fn func(c *conn, v int16, req Req) Resp) *api {
	a := &api{key: key, min: min, max: max, advMin: min, on: onBroker}
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
	a := &api{key: key, min: min, max: max, advMin: min, handle: fn, on: onBroker}
	apis[key] = a
	return a
}

// apiVersionKeys lists the served APIs in key order.
func apiVersionKeys(on uint8) []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(apis))
	for _, a := range apis {
		if a.on&on == 0 {
			continue
		}
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.advMin, a.max
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ApiKey < keys[j].ApiKey })
	return keys
}
