package hooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

// Windows in Redis. A connector's open window is a key holding the token of
// the replica that opened it; the work of the window is a set named after
// the token. Joining (add to the open window, or open one) and closing (end
// the window and take its work) are each one script, so no work can join a
// window after its work was taken: it opens the next window instead. The
// opener hands the work off at the window's end and records the outcome
// under the token, where the other replicas that joined read it.
var (
	// KEYS[1] window key. ARGV[1] token if a window is opened, ARGV[2]
	// window key TTL (ms), ARGV[3] work key prefix, ARGV[4] work key TTL
	// (ms), ARGV[5..] work members. Returns {opened (0|1), token}.
	joinScript = redis.NewScript(`
local tok = redis.call('GET', KEYS[1])
local opened = 0
if not tok then
  tok = ARGV[1]
  redis.call('SET', KEYS[1], tok, 'PX', ARGV[2])
  opened = 1
end
local work = ARGV[3] .. tok
for i = 5, #ARGV do redis.call('SADD', work, ARGV[i]) end
redis.call('PEXPIRE', work, ARGV[4])
return {opened, tok}`)
	// KEYS[1] window key, KEYS[2] work key. ARGV[1] token. Returns the
	// work members.
	closeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local m = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
return m`)
)

// Outcomes recorded under a window's token.
const (
	outcomeOK     = "ok"
	outcomeFailed = "failed"
	// doneTTL keeps an outcome long enough for every joiner to poll it.
	doneTTL = time.Minute
)

// redisCoalescer shares windows across replicas through Redis.
type redisCoalescer struct {
	rdb    redis.UniversalClient
	prefix string
	sink   Sink
	opts   CoalescerOptions
	poll   time.Duration
	// self makes this process's tokens unique; seq numbers them.
	self string
	seq  atomic.Uint64

	mu     sync.Mutex
	owned  map[string]*memWindow // by token: windows this process opened
	closed bool
	wg     sync.WaitGroup
}

// NewRedisCoalescer returns a Coalescer whose windows are shared by every
// replica using the same Redis and key prefix: the first submission of a
// window, on any replica, opens it; that replica hands the window's work
// off at its end; submitters on the other replicas wait for the outcome.
// If the opener dies, its joiners give up after Window×2 + HandoffTimeout
// + 1 s with ErrHandoff, and their work is submitted again.
func NewRedisCoalescer(rdb redis.UniversalClient, prefix string, sink Sink, opts CoalescerOptions) (Coalescer, error) {
	opts = opts.withDefaults()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("make coalescer id: %w", err)
	}
	return &redisCoalescer{
		rdb: rdb, prefix: prefix, sink: sink, opts: opts,
		poll: max(opts.Window/10, 5*time.Millisecond),
		self: hex.EncodeToString(b[:]), owned: map[string]*memWindow{},
	}, nil
}

// Keys carry the connector in a hash tag so that a window's keys share a
// Redis Cluster slot.
func (r *redisCoalescer) windowKey(connector string) string {
	return r.prefix + "hookco:{" + connector + "}:window"
}

func (r *redisCoalescer) workPrefix(connector string) string {
	return r.prefix + "hookco:{" + connector + "}:work:"
}

func (r *redisCoalescer) doneKey(connector, token string) string {
	return r.prefix + "hookco:{" + connector + "}:done:" + token
}

func (r *redisCoalescer) windowTTL() time.Duration { return 2*r.opts.Window + time.Second }

func (r *redisCoalescer) Submit(ctx context.Context, connector string, work []Work) error {
	if len(work) == 0 {
		return nil
	}
	members, err := encodeWork(work)
	if err != nil {
		return fmt.Errorf("submit work of connector %s: %w", connector, err)
	}
	// Registered before the script runs, so that a concurrent local
	// submission joining this window waits in memory, not on Redis.
	token := r.self + "-" + strconv.FormatUint(r.seq.Add(1), 10)
	w := &memWindow{done: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("submit work of connector %s: %w", connector, ErrClosed)
	}
	r.owned[token] = w
	r.wg.Add(1)
	r.mu.Unlock()

	ttl := r.windowTTL()
	args := make([]any, 0, 4+len(members))
	args = append(args, token, ttl.Milliseconds(), r.workPrefix(connector), (2 * ttl).Milliseconds())
	for _, m := range members {
		args = append(args, m)
	}
	res, err := joinScript.Run(ctx, r.rdb, []string{r.windowKey(connector)}, args...).Slice()
	opened, joined := false, ""
	if err == nil && len(res) == 2 {
		n, _ := res[0].(int64)
		joined, _ = res[1].(string)
		opened = n == 1
	} else if err == nil {
		err = fmt.Errorf("unexpected answer %v", res)
	}
	if err != nil || !opened {
		r.mu.Lock()
		delete(r.owned, token)
		r.mu.Unlock()
		r.wg.Done()
	}
	if err != nil {
		return fmt.Errorf("join the coalescing window of connector %s: %w", connector, err)
	}
	if opened {
		time.AfterFunc(r.opts.Window, func() { r.flush(connector, token, w) })
		return wait(ctx, connector, w)
	}
	r.mu.Lock()
	local := r.owned[joined]
	r.mu.Unlock()
	if local != nil {
		return wait(ctx, connector, local)
	}
	return r.awaitOutcome(ctx, connector, joined)
}

func wait(ctx context.Context, connector string, w *memWindow) error {
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return fmt.Errorf("wait for the handoff of connector %s: %w", connector, ctx.Err())
	}
}

// awaitOutcome polls the outcome of a window another replica opened.
func (r *redisCoalescer) awaitOutcome(ctx context.Context, connector, token string) error {
	deadline := time.Now().Add(r.windowTTL() + r.opts.Window + r.opts.HandoffTimeout)
	key := r.doneKey(connector, token)
	t := time.NewTicker(r.poll)
	defer t.Stop()
	for {
		v, err := r.rdb.Get(ctx, key).Result()
		switch {
		case err == nil && v == outcomeOK:
			return nil
		case err == nil:
			return fmt.Errorf("%w: connector %s: the replica that held the window failed to hand it off", ErrHandoff, connector)
		case !errors.Is(err, redis.Nil):
			return fmt.Errorf("read the handoff outcome of connector %s: %w", connector, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: connector %s: the replica that held the window never reported its handoff", ErrHandoff, connector)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the handoff of connector %s: %w", connector, ctx.Err())
		case <-t.C:
		}
	}
}

// flush closes a window this process opened, hands its work off, and
// records the outcome for the other replicas and the local submitters.
func (r *redisCoalescer) flush(connector, token string, w *memWindow) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.owned, token)
		r.mu.Unlock()
		close(w.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.HandoffTimeout)
	defer cancel()
	members, err := closeScript.Run(ctx, r.rdb, []string{r.windowKey(connector), r.workPrefix(connector) + token}, token).StringSlice()
	if err != nil {
		w.err = fmt.Errorf("%w: close the coalescing window of connector %s: %w", ErrHandoff, connector, err)
		r.record(connector, token, outcomeFailed)
		return
	}
	p := pending{}
	for _, m := range members {
		t, uuid, err := decodeMember(m)
		if err != nil {
			continue // not written by this code; nothing to re-read
		}
		if uuid == "" {
			p.add(t)
		} else {
			p.add(t, uuid)
		}
	}
	w.err = handoff(r.sink, r.opts.HandoffTimeout, connector, p.compact(r.opts.WidenAbove))
	outcome := outcomeOK
	if w.err != nil {
		outcome = outcomeFailed
	}
	r.record(connector, token, outcome)
}

// record stores a window's outcome. If it cannot, the joiners on other
// replicas give up at their deadline and submit again: slower, never lost.
func (r *redisCoalescer) record(connector, token, outcome string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.rdb.Set(ctx, r.doneKey(connector, token), outcome, doneTTL).Err()
}

func (r *redisCoalescer) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// member is the JSON form of one (target, event uuid) in a window's set.
type member struct {
	Kind  int32  `json:"k"`
	ID    string `json:"i"`
	PType int32  `json:"pt,omitempty"`
	PID   string `json:"p,omitempty"`
	UUID  string `json:"u,omitempty"`
}

func encodeWork(work []Work) ([]string, error) {
	var out []string
	for _, w := range work {
		m := member{Kind: int32(w.Target.GetKind()), ID: w.Target.GetId()}
		if p := w.Target.GetMember(); p != nil {
			m.PType, m.PID = int32(p.GetType()), p.GetId()
		}
		uuids := w.EventUUIDs
		if len(uuids) == 0 {
			uuids = []string{""}
		}
		for _, u := range uuids {
			m.UUID = u
			b, err := json.Marshal(m)
			if err != nil {
				return nil, fmt.Errorf("encode target %s: %w", TargetKey(w.Target), err)
			}
			out = append(out, string(b))
		}
	}
	return out, nil
}

func decodeMember(s string) (*eventsv1.SyncTarget, string, error) {
	var m member
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, "", fmt.Errorf("decode coalesced target: %w", err)
	}
	t := &eventsv1.SyncTarget{Kind: eventsv1.SyncTarget_Kind(m.Kind), Id: m.ID}
	if m.PID != "" {
		t.Member = &eventsv1.Principal{Type: eventsv1.PrincipalType(m.PType), Id: m.PID}
	}
	return t, m.UUID, nil
}
