package mailcapture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Store reads captured messages.
type Store struct {
	kv jetstream.KeyValue
}

func declare(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:       Bucket,
		Description:  "accessbus dev: emails captured by the embedded SMTP server, by id",
		History:      1,
		TTL:          opts.MaxAge,
		MaxValueSize: MaxMessageBytes * 2,
		Storage:      opts.Storage,
		Replicas:     opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declare bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv}, nil
}

// OpenStore opens the bucket for reading; ErrNoCapture when it does not
// exist.
func OpenStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, ErrNoCapture
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv}, nil
}

// List returns every captured message, oldest (lowest id) first.
func (s *Store) List(ctx context.Context) ([]Message, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list captured mail: %w", err)
	}
	var ids []uint64
	for k := range lister.Keys() {
		if id, err := strconv.ParseUint(k, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]Message, 0, len(ids))
	for _, id := range ids {
		m, err := s.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // expired between the listing and the read
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Get returns the message with id; ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, id uint64) (Message, error) {
	e, err := s.kv.Get(ctx, strconv.FormatUint(id, 10))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Message{}, fmt.Errorf("message %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Message{}, fmt.Errorf("read captured message %d: %w", id, err)
	}
	var m Message
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return Message{}, fmt.Errorf("decode captured message %d: %w", id, err)
	}
	return m, nil
}
