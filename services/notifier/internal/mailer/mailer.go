// Package mailer hands emails to an SMTP server with github.com/wneessen/go-mail
// and tells a permanent refusal (a 5xx reply) apart from a failure that a later
// attempt may get past (a 4xx reply, a refused or dropped connection, a
// timeout).
package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/accessbus/accessbus/libs/telemetry"
)

// TLSMode says how the connection to the SMTP server is protected.
type TLSMode string

// The TLS modes of ACCESSBUS_SMTP_TLS.
const (
	// TLSStartTLS upgrades with STARTTLS when the server offers it and sends
	// in the clear when it does not.
	TLSStartTLS TLSMode = "starttls"
	// TLSStartTLSRequired refuses to send unless the server offers STARTTLS.
	TLSStartTLSRequired TLSMode = "starttls-required"
	// TLSNone never encrypts (a local relay or the dev capture server).
	TLSNone TLSMode = "none"
	// TLSImplicit speaks TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit TLSMode = "tls"
)

// ParseTLSMode checks a TLS mode's spelling.
func ParseTLSMode(s string) (TLSMode, error) {
	switch m := TLSMode(strings.ToLower(strings.TrimSpace(s))); m {
	case TLSStartTLS, TLSStartTLSRequired, TLSNone, TLSImplicit:
		return m, nil
	}
	return "", fmt.Errorf("%q: use starttls, starttls-required, none or tls", s)
}

// Config says which server to send through and as whom.
type Config struct {
	// Addr is the server's host:port.
	Addr string
	// Username and Password authenticate (SMTP AUTH) when Username is set.
	// AUTH needs an encrypted connection: the plain-text mechanisms are not
	// offered over a clear one.
	Username string
	Password telemetry.Secret
	// TLS is how the connection is protected.
	TLS TLSMode
	// From is the sender address, with or without a display name.
	From string
	// Timeout bounds connecting and each SMTP command; 0 means 30s.
	Timeout time.Duration
	// TLSConfig overrides the TLS settings (for a private CA); nil uses the
	// system's roots. ServerName defaults to the host of Addr.
	TLSConfig *tls.Config
}

// Message is one email to one recipient.
type Message struct {
	// To is the recipient's address (already checked with net/mail).
	To string
	// Subject, Text and HTML are the subject line and the two bodies.
	Subject string
	Text    string
	HTML    string
	// MessageID is the Message-ID header without angle brackets.
	MessageID string
	// Date is the Date header.
	Date time.Time
}

// Error is a failed send: the server's reply code (0 when no server
// answered) and text, and whether trying again cannot help.
type Error struct {
	Code      int
	Message   string
	Permanent bool
}

func (e *Error) Error() string {
	if e.Code == 0 {
		return "smtp: " + e.Message
	}
	return fmt.Sprintf("smtp %d: %s", e.Code, e.Message)
}

// SMTP sends messages through one SMTP server, one connection per message.
// It is safe for concurrent use.
type SMTP struct {
	cfg  Config
	host string
	port int
	from *mail.Address
}

// New checks cfg and returns a sender. It does not connect.
func New(cfg Config) (*SMTP, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("smtp address %q: want host:port such as smtp.example.com:587", cfg.Addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("smtp address %q: the port must be a number from 1 to 65535", cfg.Addr)
	}
	if _, err := ParseTLSMode(string(cfg.TLS)); err != nil {
		return nil, fmt.Errorf("smtp TLS mode %w", err)
	}
	if cfg.Username != "" && cfg.TLS == TLSNone {
		return nil, errors.New("smtp: a username is set but TLS is none: the password would cross the network in the clear; use starttls-required or tls")
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("sender address %q: %w", cfg.From, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &SMTP{cfg: cfg, host: host, port: port, from: from}, nil
}

// From returns the sender address (without display name).
func (s *SMTP) From() string { return s.from.Address }

// Send hands m to the server. A failure is an *Error; Permanent is set for
// a 5xx reply to the mail transaction (MAIL, RCPT, DATA).
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(s.from.String()); err != nil {
		return &Error{Message: "sender address: " + err.Error(), Permanent: true}
	}
	if err := msg.To(m.To); err != nil {
		return &Error{Message: "recipient address: " + err.Error(), Permanent: true}
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.MessageID)
	msg.SetDateWithValue(m.Date)
	msg.SetUserAgent("accessbus notifier")
	// RFC 3834: automatic mail, so that vacation responders stay quiet.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}

	client, err := gomail.NewClient(s.host, s.options()...)
	if err != nil {
		return &Error{Message: "configure the SMTP client: " + s.redact(err.Error())}
	}
	err = client.DialAndSendWithContext(ctx, msg)
	if err == nil || msg.IsDelivered() {
		// The server accepted the message; a failure after that (closing the
		// connection, RSET) does not undo the delivery.
		return nil
	}
	return s.classify(err)
}

func (s *SMTP) options() []gomail.Option {
	opts := []gomail.Option{gomail.WithPort(s.port), gomail.WithTimeout(s.cfg.Timeout)}
	tlsCfg := &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}
	if s.cfg.TLSConfig != nil {
		tlsCfg = s.cfg.TLSConfig.Clone()
		if tlsCfg.ServerName == "" {
			tlsCfg.ServerName = s.host
		}
	}
	opts = append(opts, gomail.WithTLSConfig(tlsCfg))
	switch s.cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case TLSStartTLSRequired:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password.Reveal()))
	}
	return opts
}

// classify turns go-mail's error into an *Error with the reply code.
func (s *SMTP) classify(err error) *Error {
	out := &Error{Message: s.redact(err.Error())}
	var se *gomail.SendError
	if errors.As(err, &se) {
		out.Code = se.ErrorCode()
		// Only a refusal of this mail transaction is final: the server will
		// refuse it again. Anything without a code (a dropped connection)
		// may pass later.
		out.Permanent = out.Code >= 500 && out.Code < 600
		return out
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		// A reply outside the mail transaction (greeting, EHLO, STARTTLS,
		// AUTH): the server or our settings are wrong, not this email. It is
		// retried, so that mail waits while someone fixes the settings.
		out.Code = te.Code
	}
	return out
}

// redact keeps the password out of any text that may echo it.
func (s *SMTP) redact(msg string) string {
	return telemetry.RedactString(msg, s.cfg.Password.Reveal())
}
