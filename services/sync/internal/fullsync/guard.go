package fullsync

import (
	"fmt"

	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// DefaultRemovalThreshold is the share of a connector's grants a run may
// remove without a person's confirmation when Options.RemovalThreshold is 0.
const DefaultRemovalThreshold = 0.20

// shrinking is a grant container of todo that loses grants.
type shrinking struct {
	i        int
	kind, id string
	prev     *changes.GrantSet
	next     *changes.GrantSet
}

// guardRemovals applies the removal guard to what the run is about to
// commit (see the package doc): when the grant removals are too many, it
// returns todo with every removed grant put back into its container and
// no gone container at all, and marks the report.
func (r *runner) guardRemovals(todo, goneGrants, goneResources []pending) ([]pending, []pending, []pending, error) {
	var removed int64
	var shrinks []shrinking
	for i, p := range todo {
		kind, id, ok := state.SplitKey(r.c.ID, p.key)
		if !ok || changes.IsResourceKind(kind) {
			continue
		}
		prev := r.snap.Containers[p.key]
		if !prev.Exists() || string(prev.Value) == string(p.value) {
			continue
		}
		ps, err := changes.DecodeGrants(kind, id, prev.Value)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("removal guard: %w", err)
		}
		ns, err := changes.DecodeGrants(kind, id, p.value)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("removal guard: %w", err)
		}
		n := 0
		for k := range ps.Grants {
			if _, ok := ns.Grants[k]; !ok {
				n++
			}
		}
		if n > 0 {
			removed += int64(n)
			shrinks = append(shrinks, shrinking{i: i, kind: kind, id: id, prev: ps, next: ns})
		}
	}
	for _, p := range goneGrants {
		n, err := r.storedGrants(p.key)
		if err != nil {
			return nil, nil, nil, err
		}
		removed += n
	}
	if removed == 0 || r.c.ConfirmRemovals {
		return todo, goneGrants, goneResources, nil
	}
	var held int64
	for key, ent := range r.snap.Containers {
		if !ent.Exists() {
			continue
		}
		n, err := r.storedGrants(key)
		if err != nil {
			return nil, nil, nil, err
		}
		held += n
	}
	threshold := r.c.Options.RemovalThreshold
	if threshold <= 0 {
		threshold = DefaultRemovalThreshold
	}
	if float64(removed) <= threshold*float64(held) {
		return todo, goneGrants, goneResources, nil
	}
	for _, s := range shrinks {
		for k, g := range s.prev.Grants {
			if _, ok := s.next.Grants[k]; !ok {
				s.next.Add(g)
			}
		}
		// An empty marker makes the next run re-list the group's members,
		// so it computes the held removals again instead of trusting them.
		s.next.Marker = ""
		v, err := changes.EncodeGrants(s.kind, s.next)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("removal guard: keep %s %s: %w", s.kind, s.id, err)
		}
		todo[s.i].value = v
	}
	r.report.RemovalsHeld = true
	r.report.RemovalsHeldCount = removed + int64(len(goneResources))
	r.log.Warn("removals held: confirm them with accessbus sync confirm-removals",
		"grant_removals", removed, "resource_deletions", len(goneResources), "grants", held, "threshold", threshold)
	return todo, nil, nil, nil
}

// storedGrants counts the grants of a stored container; 0 for a resource.
func (r *runner) storedGrants(key string) (int64, error) {
	kind, id, ok := state.SplitKey(r.c.ID, key)
	if !ok || changes.IsResourceKind(kind) {
		return 0, nil
	}
	ent := r.snap.Containers[key]
	if !ent.Exists() {
		return 0, nil
	}
	s, err := changes.DecodeGrants(kind, id, ent.Value)
	if err != nil {
		return 0, fmt.Errorf("removal guard: %w", err)
	}
	return int64(len(s.Grants)), nil
}
