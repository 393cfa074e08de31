package lease

import "github.com/redis/go-redis/v9"

// SharedKeyPrefix is the Redis key prefix of the platform's leases.
const SharedKeyPrefix = "accessbus:lease:"

// SharedStore returns the lease store every replica shares: Redis under
// SharedKeyPrefix, or, without Redis (one process), memory.
func SharedStore(rdb *redis.Client) Store {
	if rdb == nil {
		return NewMemory()
	}
	return NewRedis(rdb, SharedKeyPrefix)
}
