package ratelimit

import "github.com/redis/go-redis/v9"

// SharedKeyPrefix is the Redis key prefix of the platform's rate budget:
// every service that calls Okta must use the same, so that together they
// stay within each connector's share.
const SharedKeyPrefix = "accessbus:ratelimit:"

// SharedStore returns the store every service of the platform shares: Redis
// under SharedKeyPrefix, or, without Redis (one process), memory.
func SharedStore(rdb *redis.Client) Store {
	if rdb == nil {
		return NewMemoryStore()
	}
	return NewRedisStore(rdb, SharedKeyPrefix)
}
