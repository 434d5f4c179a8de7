package broker

// ApiVersions (key 18), versions 0-4.
//
// The response lists every API in the registry (apis.go) with the range we
// serve. Following KIP-511, a request at a version we do not serve is
// answered (not dropped) with a v0 body carrying UNSUPPORTED_VERSION and the
// full list, so the client can retry at a version both sides know; the
// response header is always v0 (see wire.AppendResponse).
//
// From v3 the response lists metadata.version and transaction.version as
// supported and finalized features (addFeatures). transaction.version 2
// tells clients to use transactions v2 (KIP-890: implicit partition
// registration by Produce v12+ and TxnOffsetCommit v5+, an epoch bump at
// every EndTxn v5).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(18, 0, 4, func(c *conn, v int16, req *kmsg.ApiVersionsRequest) *kmsg.ApiVersionsResponse {
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.ApiKeys = apiVersionKeys(c.on)
		c.b.addFeatures(resp)
		return resp
	}).alsoController()
}

func apiVersionsUnsupported(on uint8) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = apiVersionKeys(on)
	return resp
}

// metadataVersionLevel is the metadata.version Gregor finalizes: Kafka
// 4.4's (4.4-IV2), so Kafka's tools treat the cluster as one of theirs.
const metadataVersionLevel = 33

// transactionVersion is the transaction.version Gregor finalizes.
const transactionVersion = 2

// addFeatures lists metadata.version as supported and finalized (v3+),
// with the metadata offset as the finalized features epoch, as Kafka does.
func (b *Broker) addFeatures(resp *kmsg.ApiVersionsResponse) {
	sf := kmsg.NewApiVersionsResponseSupportedFeature()
	sf.Name, sf.MinVersion, sf.MaxVersion = "metadata.version", 7, metadataVersionLevel
	resp.SupportedFeatures = append(resp.SupportedFeatures, sf)
	ff := kmsg.NewApiVersionsResponseFinalizedFeature()
	ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = "metadata.version", metadataVersionLevel, metadataVersionLevel
	resp.FinalizedFeatures = append(resp.FinalizedFeatures, ff)
	sf = kmsg.NewApiVersionsResponseSupportedFeature()
	sf.Name, sf.MinVersion, sf.MaxVersion = "transaction.version", 0, transactionVersion
	resp.SupportedFeatures = append(resp.SupportedFeatures, sf)
	ff = kmsg.NewApiVersionsResponseFinalizedFeature()
	ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = "transaction.version", transactionVersion, transactionVersion
	resp.FinalizedFeatures = append(resp.FinalizedFeatures, ff)
	resp.FinalizedFeaturesEpoch = int64(b.catalog.offset())
}
