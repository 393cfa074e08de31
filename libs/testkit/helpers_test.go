package testkit_test

import "github.com/nats-io/nats.go/jetstream"

func jsConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}}
}
