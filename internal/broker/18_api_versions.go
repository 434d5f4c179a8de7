package broker

// ApiVersions (key 18), versions 0-4.
//
// The response lists every API in the registry (apis.go) with the range we
// serve. Following KIP-511, a request at a version we do not serve is
// answered (not dropped) with a v0 body carrying UNSUPPORTED_VERSION and the
// full list, so the client can retry at a version both sides know; the
// response header is always v0 (see wire.AppendResponse).
//
// Deviation: no features (SupportedFeatures/FinalizedFeatures) are listed;
// Gregor has no metadata.version yet.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(18, 0, 4, func(c *conn, v int16, req *kmsg.ApiVersionsRequest) *kmsg.ApiVersionsResponse {
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.ApiKeys = apiVersionKeys()
		return resp
	})
}

func apiVersionsUnsupported() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = apiVersionKeys()
	return resp
}
