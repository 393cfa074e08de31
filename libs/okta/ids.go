package okta

import (
	"bytes"
	"encoding/json"
	"errors"
)

// errIDsSyntax sends idsOf to encoding/json, which says what is wrong.
var errIDsSyntax = errors.New("not a plain array of objects")

// idsOf returns the "id" of each object of a JSON array of objects. It
// scans the page once without building the objects, which is most of the
// cost of reading a large org's group members; anything it does not expect
// (a syntax error, an escaped key or id) goes to encoding/json instead, so
// the result and the errors are encoding/json's.
func idsOf(data []byte) ([]string, error) {
	if ids, err := scanIDs(data); err == nil {
		return ids, nil
	}
	var page []wireID
	if err := json.Unmarshal(data, &page); err != nil {
		return nil, err
	}
	ids := make([]string, len(page))
	for i, w := range page {
		ids[i] = w.ID
	}
	return ids, nil
}

// scanIDs is idsOf's fast path; it fails with errIDsSyntax on anything
// but an array of objects whose keys and ids have no escapes.
func scanIDs(data []byte) ([]string, error) {
	s := idScanner{data: data}
	s.ws()
	if !s.eat('[') {
		return nil, errIDsSyntax
	}
	var ids []string
	s.ws()
	if s.eat(']') {
		return s.end(ids)
	}
	for {
		s.ws()
		id, err := s.object()
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
		s.ws()
		if s.eat(']') {
			return s.end(ids)
		}
		if !s.eat(',') {
			return nil, errIDsSyntax
		}
	}
}

type idScanner struct {
	data []byte
	i    int
}

func (s *idScanner) end(ids []string) ([]string, error) {
	s.ws()
	if s.i != len(s.data) {
		return nil, errIDsSyntax
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

func (s *idScanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *idScanner) eat(c byte) bool {
	if s.i < len(s.data) && s.data[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads one object and returns its top-level "id" string.
func (s *idScanner) object() (string, error) {
	if !s.eat('{') {
		return "", errIDsSyntax
	}
	id, found := "", false
	s.ws()
	if s.eat('}') {
		return "", errIDsSyntax // no id
	}
	for {
		s.ws()
		key, plain := s.str()
		if !plain {
			return "", errIDsSyntax
		}
		s.ws()
		if !s.eat(':') {
			return "", errIDsSyntax
		}
		s.ws()
		if string(key) == "id" && s.i < len(s.data) && s.data[s.i] == '"' {
			v, plain := s.str()
			if !plain || found {
				return "", errIDsSyntax
			}
			id, found = string(v), true
		} else if !s.skip() {
			return "", errIDsSyntax
		}
		s.ws()
		if s.eat('}') {
			if !found {
				return "", errIDsSyntax
			}
			return id, nil
		}
		if !s.eat(',') {
			return "", errIDsSyntax
		}
	}
}

// str reads a string without escapes and returns its contents; plain is
// false for anything else.
func (s *idScanner) str() (v []byte, plain bool) {
	if !s.eat('"') {
		return nil, false
	}
	rest := s.data[s.i:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return nil, false
	}
	for _, c := range rest[:j] {
		if c < 0x20 {
			return nil, false
		}
	}
	s.i += j + 1
	return rest[:j], true
}

// skip skips one value of any kind. It checks the nesting of the value's
// brackets, its literals and the characters of its numbers, not the escapes
// of its strings or the grammar of its numbers: a page that passes here
// but is not JSON has brackets, quotes and commas where JSON has them, and
// only the ids are taken from it.
func (s *idScanner) skip() bool {
	if s.i >= len(s.data) {
		return false
	}
	switch s.data[s.i] {
	case '"':
		return s.skipString()
	case '{', '[':
		var open []byte
		for s.i < len(s.data) {
			switch c := s.data[s.i]; c {
			case '"':
				if !s.skipString() {
					return false
				}
				continue
			case '{', '[':
				open = append(open, c)
			case '}', ']':
				if len(open) == 0 || open[len(open)-1] != c-2 { // '{'+2 == '}', '['+2 == ']'
					return false
				}
				open = open[:len(open)-1]
				if len(open) == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	}
	start := s.i
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return scalar(s.data[start:s.i])
		}
		s.i++
	}
	return false
}

// scalar says whether b is a JSON literal or made of a number's characters.
func scalar(b []byte) bool {
	switch string(b) {
	case "true", "false", "null":
		return true
	case "":
		return false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
}

// skipString skips a string, escapes included.
func (s *idScanner) skipString() bool {
	s.i++ // the opening quote
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return true
		default:
			s.i++
		}
	}
	return false
}
