package oktasim

import "net/http"

type hookDispatcher struct{}

func newHookDispatcher(o *Org, c *http.Client) *hookDispatcher { return &hookDispatcher{} }
func (d *hookDispatcher) close()                               {}
func (s *Server) routesHooks()                                 {}
