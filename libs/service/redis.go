package service

import (
	"context"
	"errors"
	"fmt"
	"regexp"
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
		// The parser's message may quote the URL, password included.
		msg := userinfo.ReplaceAllString(err.Error(), "${1}[REDACTED]@")
		return nil, fmt.Errorf("%q: want redis://host:port/db or host:port: %s", redactURL(raw), msg)
	}
	return opts, nil
}

// userinfo matches the user and password part of URLs inside a message.
var userinfo = regexp.MustCompile(`([a-z][a-z0-9+.-]*://)[^@/\s"]*@`)

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
