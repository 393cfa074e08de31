package oktasim

import "net/http"

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) { notFound(w, r.URL.Path) }
