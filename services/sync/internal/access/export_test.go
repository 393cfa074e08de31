package access

// SetAfterLoad makes Snapshot call f right after it read the state, while
// the connector is held: tests use it to play a writer that ignores the hold.
func SetAfterLoad(s *Service, f func()) { s.afterLoad = f }
