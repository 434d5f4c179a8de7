// Package kafkago runs segmentio/kafka-go against an embedded broker:
// its Client.Fetch (a sessionless full fetch with session id -1 and epoch
// -1) and its Reader.
package kafkago
