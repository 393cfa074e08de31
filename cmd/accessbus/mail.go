package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/accessbus/accessbus/services/notifier/mailcapture"
)

// mailOptions are the flags of `accessbus mail`.
type mailOptions struct {
	natsURL string
	dataDir string
	server  string
	to      string
	json    bool
	html    bool
	raw     bool
}

func newMailCmd() *cobra.Command {
	o := mailOptions{}
	cmd := &cobra.Command{
		Use:   "mail",
		Short: "Read the emails that accessbus dev captured",
		Long: `accessbus dev runs an SMTP server in process and points the notifier at it;
every email it receives is kept (7 days) in the JetStream KV bucket MAIL_CAPTURE.
These commands read that bucket: through accessbus dev's HTTP server with
--server (and the API key, as other commands take it), else from NATS: --nats-url,
else ACCESSBUS_NATS_URL, else the one a running 'accessbus dev' uses in --data-dir.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.natsURL, "nats-url", "", "NATS server URL")
	pf.StringVar(&o.dataDir, "data-dir", defaultDataDir, "data dir of a running accessbus dev, to find its NATS server")
	pf.StringVar(&o.server, "server", "", "accessbus dev's HTTP address, such as http://127.0.0.1:8080: read the mail through it")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the captured emails, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withMailStore(cmd.Context(), o, func(s mailSource) error {
				return listMail(cmd.Context(), s, o, cmd.OutOrStdout())
			})
		},
	}
	list.Flags().StringVar(&o.to, "to", "", "only emails to this address")
	list.Flags().BoolVar(&o.json, "json", false, "print one JSON object a line (id, received_at, from, to, subject, message_id)")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Print one captured email: its headers and plain-text body",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("email id %q: use the number that 'accessbus mail list' prints", args[0])
			}
			return withMailStore(cmd.Context(), o, func(s mailSource) error {
				return showMail(cmd.Context(), s, id, o, cmd.OutOrStdout())
			})
		},
	}
	show.Flags().BoolVar(&o.html, "html", false, "print the HTML body instead of the plain-text one")
	show.Flags().BoolVar(&o.raw, "raw", false, "print the message exactly as the SMTP server received it")
	cmd.AddCommand(list, show)
	return cmd
}

// mailSource is where the captured mail is read: the capture bucket, or
// accessbus dev's HTTP endpoint.
type mailSource interface {
	List(ctx context.Context) ([]mailcapture.Message, error)
	Get(ctx context.Context, id uint64) (mailcapture.Message, error)
}

// withMailStore opens the captured mail for f: through --server, or from
// NATS's capture bucket.
func withMailStore(ctx context.Context, o mailOptions, f func(mailSource) error) error {
	if o.server != "" {
		return f(&httpMail{server: strings.TrimSuffix(o.server, "/"), key: apiKey(o.dataDir)})
	}
	url, err := resolveNATSURL(o.natsURL, o.dataDir)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(url, nats.Name("accessbus-mail"))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s (is accessbus dev running?): %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("open JetStream: %w", err)
	}
	s, err := mailcapture.OpenStore(ctx, js)
	if err != nil {
		return err
	}
	return f(s)
}

// mailLine is one email as `mail list --json` prints it.
type mailLine struct {
	ID         uint64    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	From       string    `json:"from"`
	To         []string  `json:"to"`
	Subject    string    `json:"subject"`
	MessageID  string    `json:"message_id"`
}

func listMail(ctx context.Context, s mailSource, o mailOptions, w io.Writer) error {
	msgs, err := s.List(ctx)
	if err != nil {
		return err
	}
	var tw *tabwriter.Writer
	if !o.json {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRECEIVED\tTO\tSUBJECT")
	}
	n := 0
	for _, m := range msgs {
		if o.to != "" && !containsFold(m.To, o.to) {
			continue
		}
		n++
		if o.json {
			b, err := json.Marshal(mailLine{ID: m.ID, ReceivedAt: m.ReceivedAt, From: m.From, To: m.To, Subject: m.Subject, MessageID: m.MessageID})
			if err != nil {
				return fmt.Errorf("encode email %d: %w", m.ID, err)
			}
			if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.ID, m.ReceivedAt.Local().Format(time.DateTime), strings.Join(m.To, ", "), m.Subject)
	}
	if tw == nil {
		return nil
	}
	if n == 0 {
		fmt.Fprintln(tw, "(no emails)")
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write the list of emails: %w", err)
	}
	return nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func showMail(ctx context.Context, s mailSource, id uint64, o mailOptions, w io.Writer) error {
	m, err := s.Get(ctx, id)
	if errors.Is(err, mailcapture.ErrNotFound) {
		return fmt.Errorf("no captured email %d: 'accessbus mail list' shows the ids (emails are kept %s)", id, mailcapture.DefaultMaxAge)
	}
	if err != nil {
		return err
	}
	if o.raw {
		_, err := io.WriteString(w, strings.ReplaceAll(m.Raw, "\r\n", "\n"))
		return err
	}
	p, err := mailcapture.Parse(m.Raw)
	if err != nil {
		return fmt.Errorf("email %d: %w (try --raw)", id, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ID:         %d\n", m.ID)
	fmt.Fprintf(&b, "Received:   %s\n", m.ReceivedAt.Local().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "From:       %s\n", p.Header.Get("From"))
	fmt.Fprintf(&b, "To:         %s\n", strings.Join(m.To, ", "))
	fmt.Fprintf(&b, "Subject:    %s\n", p.Subject)
	fmt.Fprintf(&b, "Message-ID: %s\n\n", m.MessageID)
	body := p.Text
	if o.html {
		body = p.HTML
	}
	if body == "" {
		kind := "plain-text"
		if o.html {
			kind = "HTML"
		}
		body = fmt.Sprintf("(no %s body; try --raw)\n", kind)
	}
	b.WriteString(body)
	if !strings.HasSuffix(body, "\n") {
		b.WriteString("\n")
	}
	_, err = io.WriteString(w, b.String())
	return err
}
