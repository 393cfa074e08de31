// Package oktasim is a faithful Okta org simulator: the Okta of every test,
// benchmark and demo of accessbus, since no real Okta org is reachable from
// our machines. It serves the Management API paths accessbus reads and
// writes with Okta's JSON shapes, status codes, headers, pagination, rate
// limits (on a clock that can run faster than the wall clock), tokens and
// admin-role permissions, System Log and event hooks, as described by
// shared/okta/FACTS.md and Okta's OpenAPI spec.
//
// Fidelity is its worth: it is never bent to make a client pass.
package oktasim
