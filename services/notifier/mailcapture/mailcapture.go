// Package mailcapture is the SMTP server that `accessbus dev` runs in process
// so that the notifier's emails can be read without a real mail server.
// Every message it accepts is stored, whole, in the JetStream KV bucket
// MAIL_CAPTURE, where `accessbus mail list|show` (and tests) read it.
//
// The bucket (rather than files under the data dir) means that the mail
// lives where the rest of dev's state lives, is read through the same NATS
// connection as every other CLI command, and works the same with an
// external NATS (--nats-url) as with the embedded one.
package mailcapture

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the KV bucket of captured messages: key = the message's id in
// decimal, value = Message as JSON.
const Bucket = "MAIL_CAPTURE"

// DefaultMaxAge is how long a captured message is kept.
const DefaultMaxAge = 7 * 24 * time.Hour

// MaxMessageBytes is the largest message accepted (the notifier's emails are
// a few kilobytes; a NATS message holds at most 1 MiB by default).
const MaxMessageBytes = 512 << 10

// Errors of the package.
var (
	// ErrNoCapture: the bucket does not exist (no capture server ever ran
	// against this NATS).
	ErrNoCapture = errors.New("no captured mail: the MAIL_CAPTURE bucket does not exist (is accessbus dev running?)")
	// ErrNotFound: no captured message has that id.
	ErrNotFound = errors.New("no captured message with that id")
)

// Message is one captured email.
type Message struct {
	// ID numbers the messages in the order they arrived, from 1.
	ID uint64 `json:"id"`
	// ReceivedAt is when the server accepted it.
	ReceivedAt time.Time `json:"received_at"`
	// From and To are the envelope (MAIL FROM, RCPT TO).
	From string   `json:"from"`
	To   []string `json:"to"`
	// Subject and MessageID are read from the headers, decoded.
	Subject   string `json:"subject"`
	MessageID string `json:"message_id"`
	// Raw is the message as it was received (RFC 5322, CRLF line ends).
	Raw string `json:"raw"`
}

// Reply is an SMTP reply a test (or a person trying failure handling) makes
// the server give instead of accepting a recipient.
type Reply struct {
	Code    int
	Message string
}

func (r *Reply) Error() string { return fmt.Sprintf("%d %s", r.Code, r.Message) }

// Options configure the server.
type Options struct {
	// Logger receives the server's own errors; nil discards them.
	Logger *slog.Logger
	// Storage is file storage unless set to jetstream.MemoryStorage.
	Storage jetstream.StorageType
	// Replicas of the bucket; 0 means 1.
	Replicas int
	// MaxAge of captured messages; 0 means DefaultMaxAge.
	MaxAge time.Duration
	// TLSConfig, when set, makes the server offer STARTTLS.
	TLSConfig *tls.Config
	// Username and Password, when Username is set, make AUTH PLAIN required
	// before MAIL FROM (over TLS only unless AllowInsecureAuth).
	Username          string
	Password          string
	AllowInsecureAuth bool
	// Reject, when set, is asked at each RCPT TO; a non-nil Reply is sent
	// instead of accepting the recipient (a 4xx or 5xx code).
	Reject func(from, to string) *Reply
}

// Server is a running capture server.
type Server struct {
	srv   *smtp.Server
	ln    net.Listener
	store *Store
	log   *slog.Logger
	opts  Options

	idMu   sync.Mutex
	lastID uint64

	conns    atomic.Int64
	served   chan struct{}
	closeErr error
	once     sync.Once
}

// Start listens on addr (such as "127.0.0.1:0" for a free port) and serves
// until Close. Address returns where it listens.
func Start(ctx context.Context, addr string, js jetstream.JetStream, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mail capture: listen on %s: %w", addr, err)
	}
	s, err := Serve(ctx, ln, js, opts)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return s, nil
}

// Serve is Start on a listener the caller opened (so that the address is
// known before NATS is up); the server closes ln on Close.
func Serve(ctx context.Context, ln net.Listener, js jetstream.JetStream, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	store, err := declare(ctx, js, opts)
	if err != nil {
		return nil, err
	}
	s := &Server{store: store, ln: ln, log: opts.Logger, opts: opts, served: make(chan struct{})}
	// Ids continue after the highest stored one, so a restarted dev keeps
	// numbering where it stopped.
	msgs, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	if n := len(msgs); n > 0 {
		s.lastID = msgs[n-1].ID
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "accessbus-mail-capture"
	srv.MaxMessageBytes = MaxMessageBytes
	srv.MaxRecipients = 100
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.TLSConfig = opts.TLSConfig
	srv.AllowInsecureAuth = opts.AllowInsecureAuth
	srv.ErrorLog = slogPrinter{opts.Logger}
	s.srv = srv
	go func() {
		defer close(s.served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			s.log.Error("mail capture server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Connections counts the SMTP sessions opened so far (tests check that
// something never reached the server).
func (s *Server) Connections() int64 { return s.conns.Load() }

// Store reads what the server captured.
func (s *Server) Store() *Store { return s.store }

// Close stops the server; it may be called more than once. The context is
// accepted so that it fits a list of shutdown functions.
func (s *Server) Close(context.Context) error {
	s.once.Do(func() {
		if err := s.srv.Close(); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			s.closeErr = err
		}
		<-s.served
	})
	return s.closeErr
}

func (s *Server) newSession(*smtp.Conn) (smtp.Session, error) {
	s.conns.Add(1)
	return &session{s: s}, nil
}

// save stores one accepted message under the next free id.
func (s *Server) save(ctx context.Context, m Message) (uint64, error) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	for range 1000 {
		id := s.lastID + 1
		m.ID = id
		b, err := json.Marshal(m)
		if err != nil {
			return 0, fmt.Errorf("encode captured message: %w", err)
		}
		_, err = s.store.kv.Create(ctx, strconv.FormatUint(id, 10), b)
		s.lastID = id
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // another capture server on this bucket took it
		}
		if err != nil {
			return 0, fmt.Errorf("store captured message %d: %w", id, err)
		}
		return id, nil
	}
	return 0, errors.New("store captured message: no free id")
}

type session struct {
	s      *Server
	authed bool
	from   string
	to     []string
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.s.opts.Username == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		okUser := subtle.ConstantTimeCompare([]byte(username), []byte(ss.s.opts.Username)) == 1
		okPass := subtle.ConstantTimeCompare([]byte(password), []byte(ss.s.opts.Password)) == 1
		if identity != "" && identity != username || !okUser || !okPass {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.Username != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if f := ss.s.opts.Reject; f != nil {
		if r := f(ss.from, to); r != nil {
			return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: r.Message}
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{ReceivedAt: time.Now().UTC(), From: ss.from, To: slices.Clone(ss.to), Raw: string(raw)}
	if parsed, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		m.Subject = decodeHeader(parsed.Header.Get("Subject"))
		m.MessageID = parsed.Header.Get("Message-Id")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := ss.s.save(ctx, m)
	if err != nil {
		ss.s.log.Error("mail capture: could not store a message; answering 451 so the sender retries", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "could not store the message, try again later"}
	}
	ss.s.log.Debug("mail captured", "id", id, "to", m.To, "subject", m.Subject)
	return nil
}

func (ss *session) Reset() {
	ss.from, ss.to = "", nil
}

func (ss *session) Logout() error { return nil }

// slogPrinter adapts go-smtp's error logger to slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	p.log.Warn("mail capture: " + fmt.Sprintf(format, v...))
}

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("mail capture: " + fmt.Sprint(v...))
}
