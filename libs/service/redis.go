package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ParseRedisURL reads a Redis address: redis://[user:pass@]host:port/db,
// rediss:// for TLS, or a bare host:port.
func ParseRedisURL(raw string) (*redis.Options, error) {
	if raw == "" {
		return nil, errors.New("empty Redis URL")
	}
	if !strings.Contains(raw, "://") {
		if err := validateHostPort(raw); err != nil {
			return nil, fmt.Errorf("%q: %w", raw, err)
		}
		return &redis.Options{Addr: raw}, nil
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("%q: want redis://host:port/db or host:port: %w", redactURL(raw), err)
	}
	return opts, nil
}

// ConnectRedis opens and pings a Redis client.
func ConnectRedis(ctx context.Context, raw string) (*redis.Client, error) {
	opts, err := ParseRedisURL(raw)
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("ping Redis at %s: %w", opts.Addr, err)
	}
	return rdb, nil
}

// redactURL hides a password in a URL so it can appear in an error.
func redactURL(raw string) string {
	at := strings.LastIndex(raw, "@")
	scheme := strings.Index(raw, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return raw
	}
	return raw[:scheme+3] + "[REDACTED]" + raw[at:]
}
