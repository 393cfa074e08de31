package oktasim

import "sort"

// ordered is a collection kept in insertion order, each item with a
// sequence number that never changes. Page cursors name the last sequence
// seen, so a cursor stays correct while items are added and removed: items
// added later always come after it, and removals never shift what follows.
type ordered[T any] struct {
	byID  map[string]*entry[T]
	order []*entry[T] // sorted by seq
	next  uint64
}

type entry[T any] struct {
	id  string
	seq uint64
	v   T
}

func newOrdered[T any]() *ordered[T] {
	return &ordered[T]{byID: map[string]*entry[T]{}}
}

// put inserts v under id at the end, or replaces the value of an existing id
// in place (keeping its position); it reports whether id was new.
func (o *ordered[T]) put(id string, v T) bool {
	if e, ok := o.byID[id]; ok {
		e.v = v
		return false
	}
	o.next++
	e := &entry[T]{id: id, seq: o.next, v: v}
	o.byID[id] = e
	o.order = append(o.order, e)
	return true
}

// del removes id; it reports whether it was there.
func (o *ordered[T]) del(id string) bool {
	e, ok := o.byID[id]
	if !ok {
		return false
	}
	delete(o.byID, id)
	i := sort.Search(len(o.order), func(i int) bool { return o.order[i].seq >= e.seq })
	if i < len(o.order) && o.order[i] == e {
		o.order = append(o.order[:i], o.order[i+1:]...)
	}
	return true
}

func (o *ordered[T]) get(id string) (T, bool) {
	e, ok := o.byID[id]
	if !ok {
		var zero T
		return zero, false
	}
	return e.v, true
}

func (o *ordered[T]) len() int { return len(o.order) }

// page returns up to limit items after sequence after that keep accepts (nil
// keeps all), the sequence to continue from, and whether more items follow.
func (o *ordered[T]) page(after uint64, limit int, keep func(T) bool) (items []T, last uint64, more bool) {
	i := sort.Search(len(o.order), func(i int) bool { return o.order[i].seq > after })
	for ; i < len(o.order); i++ {
		e := o.order[i]
		if keep != nil && !keep(e.v) {
			continue
		}
		if len(items) == limit {
			return items, last, true
		}
		items = append(items, e.v)
		last = e.seq
	}
	return items, last, false
}

// each calls f for every item in order until f returns false.
func (o *ordered[T]) each(f func(id string, v T) bool) {
	for _, e := range o.order {
		if !f(e.id, e.v) {
			return
		}
	}
}

// pageJSON is page with each item turned into its JSON (usually its cached
// render), as every list endpoint answers.
func pageJSON[T any](o *ordered[T], after uint64, limit int, keep func(T) bool, render func(T) []byte) (raws [][]byte, last uint64, more bool) {
	items, last, more := o.page(after, limit, keep)
	raws = make([][]byte, len(items))
	for i, it := range items {
		raws[i] = render(it)
	}
	return raws, last, more
}
