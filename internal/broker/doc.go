// Package broker serves the Kafka protocol over the partition logs of
// package storage.
//
// Layout: broker.go (lifecycle, listeners), conn.go (one reader and one
// writer goroutine per connection, responses in request order), apis.go
// (the registry that ApiVersions is built from), catalog.go (topics and their
// config overrides), topic_configs.go (the topic config table), and one file
// per Kafka API named by its key: 00_produce.go, 01_fetch.go, … Each of those
// opens with the versions served, the behaviour and any deviation from Kafka.
//
// Bad input from the network never panics the broker: it gets a Kafka error
// code, or the connection is closed and the reason logged.
package broker
