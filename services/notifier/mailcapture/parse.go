package mailcapture

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
)

// Parsed is a message taken apart for reading.
type Parsed struct {
	// Header is the top-level header.
	Header mail.Header
	// Subject is the decoded subject line.
	Subject string
	// Text and HTML are the decoded text/plain and text/html bodies (the
	// first of each), empty when absent.
	Text string
	HTML string
}

// Parse takes a raw message apart: headers, and the text and HTML bodies
// decoded from their transfer encoding, found through nested multiparts.
func Parse(raw string) (Parsed, error) {
	msg, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		return Parsed{}, fmt.Errorf("parse message: %w", err)
	}
	p := Parsed{Header: msg.Header, Subject: decodeHeader(msg.Header.Get("Subject"))}
	err = p.walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, 0)
	return p, err
}

func (p *Parsed) walk(contentType, encoding string, body io.Reader, depth int) error {
	if depth > 8 {
		return fmt.Errorf("parse message: multiparts nested too deep")
	}
	if contentType == "" {
		contentType = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("parse content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read %s part: %w", mediaType, err)
			}
			if err := p.walk(part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part, depth+1); err != nil {
				return err
			}
		}
	}
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, newlineStripper{body})
	default:
		r = body
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("decode %s body: %w", mediaType, err)
	}
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	switch {
	case mediaType == "text/plain" && p.Text == "":
		p.Text = text
	case mediaType == "text/html" && p.HTML == "":
		p.HTML = text
	}
	return nil
}

// newlineStripper drops the line breaks of base64 bodies.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(b []byte) (int, error) {
	k, err := n.r.Read(b)
	out := bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, b[:k])
	copy(b, out)
	return len(out), err
}

// decodeHeader decodes RFC 2047 encoded words; undecodable text is kept.
func decodeHeader(s string) string {
	dec := new(mime.WordDecoder)
	if d, err := dec.DecodeHeader(s); err == nil {
		return d
	}
	return s
}
