package oktasim

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// System Log limits (shared/okta/FACTS.md and the spec).
const (
	logDefaultLimit = 100
	logMaxLimit     = 1000
	// logRetention is how long Okta keeps events.
	logRetention = 90 * 24 * time.Hour
	// logMaxSinceAge is how far back since may reach before Okta refuses it.
	logMaxSinceAge = 180 * 24 * time.Hour
	// logDefaultWindow is the default since: 7 days before until.
	logDefaultWindow = 7 * 24 * time.Hour
	// q: at most 10 keywords of at most 40 characters.
	logMaxKeywords   = 10
	logMaxKeywordLen = 40
)

func (s *Server) routesLogs() {
	s.handle("/api/v1/logs", map[string]http.HandlerFunc{http.MethodGet: s.listLogs})
}

// logQuery is a parsed GET /api/v1/logs.
type logQuery struct {
	page pageParams
	// lower bounds published from below: exclusive for an explicit since,
	// inclusive for the retention floor.
	lower          time.Time
	lowerExclusive bool
	until          time.Time
	hasUntil       bool
	desc           bool
	keep           func(*LogEvent) bool
}

func (q *logQuery) aboveLower(ev *LogEvent) bool {
	if q.lowerExclusive {
		return ev.Published.After(q.lower)
	}
	return !ev.Published.Before(q.lower)
}

// listLogs answers GET /api/v1/logs.
//
// Two kinds of query, as in Okta. A polling query (ASCENDING, the default,
// and no until) always has a next link, even when the page is empty: it
// points past the last event returned, or for an empty page at the same
// position, so that a client can come back later for the events that have
// arrived since. A bounded query (until given, or DESCENDING) has a next
// link only while more results exist.
//
// Results come in storage order (newest first for DESCENDING). Okta orders
// by storage time, so published may go backwards there; here events are
// stored as they are published, so it never does.
//
// Where Okta's documentation is silent the simulator chooses: since is
// exclusive and until inclusive, so that consecutive windows neither
// overlap nor leave gaps; filter comparisons are case-sensitive; q matches a
// keyword anywhere in an event's type, message, outcome, actor or targets,
// ignoring case, and every keyword must match.
func (s *Server) listLogs(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadLogs) {
		return
	}
	q, ok := s.parseLogQuery(w, r)
	if !ok {
		return
	}
	// The log only grows and an event never changes once appended (under
	// the write lock), so the slice read under the lock can be scanned
	// after it is released, without holding up writers.
	s.org.mu.RLock()
	logs := s.org.logs
	s.org.mu.RUnlock()

	var items [][]byte
	var last uint64
	more := false
	add := func(ev *LogEvent) bool {
		if q.keep != nil && !q.keep(ev) {
			return true
		}
		if len(items) == q.page.limit {
			more = true
			return false
		}
		items = append(items, ev.raw)
		last = ev.seq
		return true
	}
	if q.desc {
		end := len(logs)
		if q.page.after > 0 {
			end = sort.Search(len(logs), func(i int) bool { return logs[i].seq >= q.page.after })
		}
		if q.hasUntil {
			end = min(end, sort.Search(len(logs), func(i int) bool { return logs[i].Published.After(q.until) }))
		}
		for i := end - 1; i >= 0 && q.aboveLower(logs[i]); i-- {
			if !add(logs[i]) {
				break
			}
		}
	} else {
		start := sort.Search(len(logs), func(i int) bool { return logs[i].seq > q.page.after })
		start = max(start, sort.Search(len(logs), func(i int) bool { return q.aboveLower(logs[i]) }))
		for i := start; i < len(logs); i++ {
			if q.hasUntil && logs[i].Published.After(q.until) {
				break
			}
			if !add(logs[i]) {
				break
			}
		}
	}

	self := s.org.base + r.URL.Path
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.RawQuery
	}
	w.Header().Add("Link", "<"+self+">; rel=\"self\"")
	polling := !q.desc && !q.hasUntil
	switch {
	case len(items) > 0 && (more || polling):
		w.Header().Add("Link", "<"+s.logNext(r, encodeCursor(last))+">; rel=\"next\"")
	case polling:
		// Empty: the next poll starts from the same position.
		w.Header().Add("Link", "<"+self+">; rel=\"next\"")
	}
	writeArray(w, items)
}

// logNext is the request's URL with the after cursor replaced.
func (s *Server) logNext(r *http.Request, after string) string {
	v := r.URL.Query()
	v.Set("after", after)
	return s.org.base + r.URL.Path + "?" + v.Encode()
}

// parseLogQuery reads the query parameters, answering 400 E0000001 for
// one Okta refuses.
func (s *Server) parseLogQuery(w http.ResponseWriter, r *http.Request) (*logQuery, bool) {
	p, ok := parsePage(w, r, logDefaultLimit, logMaxLimit)
	if !ok {
		return nil, false
	}
	v := r.URL.Query()
	q := &logQuery{page: p}
	now := s.org.clock.Now()
	switch v.Get("sortOrder") {
	case "", "ASCENDING":
	case "DESCENDING":
		q.desc = true
	default:
		invalid(w, "sortOrder: must be ASCENDING or DESCENDING")
		return nil, false
	}
	var since time.Time
	if raw := v.Get("since"); raw != "" {
		t, err := parseLogTime(raw)
		if err != nil {
			invalid(w, "since: "+err.Error())
			return nil, false
		}
		if t.Before(now.Add(-logMaxSinceAge)) {
			invalid(w, "since: The since parameter is over 180 days prior to the current day")
			return nil, false
		}
		since = t
	}
	if raw := v.Get("until"); raw != "" {
		t, err := parseLogTime(raw)
		if err != nil {
			invalid(w, "until: "+err.Error())
			return nil, false
		}
		q.until, q.hasUntil = t, true
		if !since.IsZero() && !since.Before(t) {
			invalid(w, "since: The since parameter must be earlier than the until parameter")
			return nil, false
		}
	}
	// Events older than the retention period are gone, whatever since says.
	q.lower = now.Add(-logRetention)
	switch {
	case !since.IsZero():
		if !since.Before(q.lower) {
			q.lower, q.lowerExclusive = since, true
		}
	case p.after == 0:
		// The spec's default since is 7 days before until. A cursor
		// already names the position, so it alone bounds a next page.
		end := now
		if q.hasUntil {
			end = q.until
		}
		if def := end.Add(-logDefaultWindow); def.After(q.lower) {
			q.lower = def
		}
	}
	var preds []func(*LogEvent) bool
	if f := v.Get("filter"); f != "" {
		pred, err := parseLogFilter(f)
		if err != nil {
			invalid(w, "filter: "+err.Error())
			return nil, false
		}
		preds = append(preds, pred)
	}
	if raw := v.Get("q"); raw != "" {
		pred, err := logKeywords(raw)
		if err != nil {
			invalid(w, "q: "+err.Error())
			return nil, false
		}
		preds = append(preds, pred)
	}
	switch len(preds) {
	case 0:
	case 1:
		q.keep = preds[0]
	default:
		q.keep = func(ev *LogEvent) bool { return preds[0](ev) && preds[1](ev) }
	}
	return q, true
}

// parseLogTime reads an ISO 8601 time; one without a zone is UTC.
func parseLogTime(s string) (time.Time, error) {
	if t, err := parseOktaTime(s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 time such as 2006-01-02T15:04:05.000Z", s)
}

// logKeywords compiles q: every keyword must appear, ignoring case, in the
// event's type, message, severity, outcome, actor or targets.
func logKeywords(raw string) (func(*LogEvent) bool, error) {
	words := strings.Fields(raw)
	if len(words) > logMaxKeywords {
		return nil, fmt.Errorf("at most %d keywords are allowed", logMaxKeywords)
	}
	for i, k := range words {
		if len(k) > logMaxKeywordLen {
			return nil, fmt.Errorf("keyword %q is longer than %d characters", k, logMaxKeywordLen)
		}
		words[i] = strings.ToLower(k)
	}
	return func(ev *LogEvent) bool {
		var b strings.Builder
		for _, s := range []string{ev.UUID, ev.EventType, ev.DisplayMessage, ev.Severity, ev.Outcome} {
			b.WriteString(s)
			b.WriteByte(0)
		}
		for _, a := range append([]LogActor{ev.Actor}, ev.Targets...) {
			for _, s := range []string{a.ID, a.Type, a.AlternateID, a.DisplayName} {
				b.WriteString(s)
				b.WriteByte(0)
			}
		}
		hay := strings.ToLower(b.String())
		for _, k := range words {
			if !strings.Contains(hay, k) {
				return false
			}
		}
		return true
	}, nil
}

// parseLogFilter compiles a System Log filter: a SCIM filter expression of
// comparisons (eq ne co sw ew gt ge lt le, and pr) joined by and, or, not
// and parentheses, over eventType, uuid, severity, displayMessage,
// outcome.result, published, and the id, type, alternateId and displayName
// of actor and target (a target comparison holds when any target matches).
func parseLogFilter(s string) (func(*LogEvent) bool, error) {
	toks, err := lexFilter(s)
	if err != nil {
		return nil, err
	}
	p := &filterParser{toks: toks}
	pred, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q", p.toks[p.pos].text)
	}
	return pred, nil
}

// filterToken is a word, a quoted string or a parenthesis.
type filterToken struct {
	text   string
	quoted bool
}

func lexFilter(s string) ([]filterToken, error) {
	var toks []filterToken
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')':
			toks = append(toks, filterToken{text: string(c)})
			i++
		case c == '"':
			var b strings.Builder
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated string")
			}
			i++
			toks = append(toks, filterToken{text: b.String(), quoted: true})
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '(' && s[j] != ')' && s[j] != '"' {
				j++
			}
			toks = append(toks, filterToken{text: s[i:j]})
			i = j
		}
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("empty expression")
	}
	return toks, nil
}

type filterParser struct {
	toks []filterToken
	pos  int
}

// keyword reports whether the next token is the unquoted word w (any case)
// and consumes it if so.
func (p *filterParser) keyword(w string) bool {
	if p.pos < len(p.toks) && !p.toks[p.pos].quoted && strings.EqualFold(p.toks[p.pos].text, w) {
		p.pos++
		return true
	}
	return false
}

func (p *filterParser) or() (func(*LogEvent) bool, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(ev *LogEvent) bool { return l(ev) || right(ev) }
	}
	return left, nil
}

func (p *filterParser) and() (func(*LogEvent) bool, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(ev *LogEvent) bool { return l(ev) && right(ev) }
	}
	return left, nil
}

func (p *filterParser) unary() (func(*LogEvent) bool, error) {
	if p.keyword("not") {
		inner, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func(ev *LogEvent) bool { return !inner(ev) }, nil
	}
	if p.keyword("(") {
		inner, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.keyword(")") {
			return nil, fmt.Errorf("missing )")
		}
		return inner, nil
	}
	return p.comparison()
}

func (p *filterParser) comparison() (func(*LogEvent) bool, error) {
	if p.pos >= len(p.toks) {
		return nil, fmt.Errorf("expression ends too soon")
	}
	attr := p.toks[p.pos]
	p.pos++
	if attr.quoted || attr.text == "(" || attr.text == ")" {
		return nil, fmt.Errorf("expected an attribute, found %q", attr.text)
	}
	if p.pos >= len(p.toks) || p.toks[p.pos].quoted {
		return nil, fmt.Errorf("expected an operator after %s", attr.text)
	}
	op := strings.ToLower(p.toks[p.pos].text)
	p.pos++
	if strings.EqualFold(attr.text, "published") {
		return p.publishedComparison(op)
	}
	get, ok := logAttr(attr.text)
	if !ok {
		return nil, fmt.Errorf("unsupported attribute %q", attr.text)
	}
	if op == "pr" {
		return func(ev *LogEvent) bool {
			for _, v := range get(ev) {
				if v != "" {
					return true
				}
			}
			return false
		}, nil
	}
	if p.pos >= len(p.toks) || !p.toks[p.pos].quoted {
		return nil, fmt.Errorf("expected a quoted value after %s %s", attr.text, op)
	}
	want := p.toks[p.pos].text
	p.pos++
	var match func(string) bool
	switch op {
	case "eq":
		match = func(v string) bool { return v == want }
	case "ne":
		match = func(v string) bool { return v != want }
	case "co":
		match = func(v string) bool { return strings.Contains(v, want) }
	case "sw":
		match = func(v string) bool { return strings.HasPrefix(v, want) }
	case "ew":
		match = func(v string) bool { return strings.HasSuffix(v, want) }
	case "gt":
		match = func(v string) bool { return v > want }
	case "ge":
		match = func(v string) bool { return v >= want }
	case "lt":
		match = func(v string) bool { return v < want }
	case "le":
		match = func(v string) bool { return v <= want }
	default:
		return nil, fmt.Errorf("unsupported operator %q", op)
	}
	return func(ev *LogEvent) bool {
		for _, v := range get(ev) {
			if match(v) {
				return true
			}
		}
		return false
	}, nil
}

// publishedComparison compares published with a quoted ISO 8601 time.
func (p *filterParser) publishedComparison(op string) (func(*LogEvent) bool, error) {
	if op == "pr" {
		return func(*LogEvent) bool { return true }, nil
	}
	if p.pos >= len(p.toks) || !p.toks[p.pos].quoted {
		return nil, fmt.Errorf("expected a quoted time after published %s", op)
	}
	t, err := parseLogTime(p.toks[p.pos].text)
	if err != nil {
		return nil, err
	}
	p.pos++
	var cmp func(time.Time) bool
	switch op {
	case "eq":
		cmp = func(v time.Time) bool { return v.Equal(t) }
	case "ne":
		cmp = func(v time.Time) bool { return !v.Equal(t) }
	case "gt":
		cmp = func(v time.Time) bool { return v.After(t) }
	case "ge":
		cmp = func(v time.Time) bool { return !v.Before(t) }
	case "lt":
		cmp = func(v time.Time) bool { return v.Before(t) }
	case "le":
		cmp = func(v time.Time) bool { return !v.After(t) }
	default:
		return nil, fmt.Errorf("operator %q does not apply to published", op)
	}
	return func(ev *LogEvent) bool { return cmp(ev.Published) }, nil
}

// logAttr returns the values of a filterable attribute of an event.
func logAttr(name string) (func(*LogEvent) []string, bool) {
	one := func(f func(*LogEvent) string) func(*LogEvent) []string {
		return func(ev *LogEvent) []string { return []string{f(ev)} }
	}
	actorField := func(field string) func(LogActor) string {
		switch field {
		case "id":
			return func(a LogActor) string { return a.ID }
		case "type":
			return func(a LogActor) string { return a.Type }
		case "alternateid":
			return func(a LogActor) string { return a.AlternateID }
		case "displayname":
			return func(a LogActor) string { return a.DisplayName }
		}
		return nil
	}
	name = strings.ToLower(name)
	switch name {
	case "eventtype":
		return one(func(ev *LogEvent) string { return ev.EventType }), true
	case "uuid":
		return one(func(ev *LogEvent) string { return ev.UUID }), true
	case "severity":
		return one(func(ev *LogEvent) string { return ev.Severity }), true
	case "displaymessage":
		return one(func(ev *LogEvent) string { return ev.DisplayMessage }), true
	case "outcome.result":
		return one(func(ev *LogEvent) string { return ev.Outcome }), true
	}
	if field, ok := strings.CutPrefix(name, "actor."); ok {
		if f := actorField(field); f != nil {
			return one(func(ev *LogEvent) string { return f(ev.Actor) }), true
		}
	}
	if field, ok := strings.CutPrefix(name, "target."); ok {
		if f := actorField(field); f != nil {
			return func(ev *LogEvent) []string {
				vs := make([]string, len(ev.Targets))
				for i, t := range ev.Targets {
					vs[i] = f(t)
				}
				return vs
			}, true
		}
	}
	return nil, false
}
