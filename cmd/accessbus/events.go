package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/accessbus/accessbus/libs/bus"
	// Registers every bus payload type so that tail can decode it.
	_ "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

type tailOptions struct {
	subject   string
	fromStart bool
	natsURL   string
	dataDir   string
	limit     int
}

func newEventsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Read the events on the bus"}
	o := tailOptions{}
	tail := &cobra.Command{
		Use:   "tail",
		Short: "Print bus events as JSON lines (subject, sequence, time, decoded payload)",
		Long: `Prints the events of every stream whose subjects match --subject, one JSON
object a line: stream, seq, subject, time, msg_id, type and the decoded payload.
Without --from-start only new events are printed. The NATS server is --nats-url,
else ACCESSBUS_NATS_URL, else the one a running 'accessbus dev' uses in --data-dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url, err := resolveNATSURL(o.natsURL, o.dataDir)
			if err != nil {
				return err
			}
			nc, err := nats.Connect(url, nats.Name("accessbus-events-tail"))
			if err != nil {
				return fmt.Errorf("connect to NATS at %s (is accessbus dev running?): %w", url, err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return fmt.Errorf("open JetStream: %w", err)
			}
			return tailEvents(cmd.Context(), js, o, cmd.OutOrStdout())
		},
	}
	f := tail.Flags()
	f.StringVar(&o.subject, "subject", ">", "subject filter, with NATS wildcards (for example access.c1.>)")
	f.BoolVar(&o.fromStart, "from-start", false, "print the stored events from the start of each stream, then follow")
	f.StringVar(&o.natsURL, "nats-url", "", "NATS server URL")
	f.StringVar(&o.dataDir, "data-dir", defaultDataDir, "data dir of a running accessbus dev, to find its NATS server")
	f.IntVar(&o.limit, "limit", 0, "exit after printing this many events (0: follow until interrupted)")
	cmd.AddCommand(tail)
	return cmd
}

// tailEvents prints the events matching o.subject from every stream that can
// hold them, until ctx ends or o.limit events were printed.
func tailEvents(ctx context.Context, js jetstream.JetStream, o tailOptions, w io.Writer) error {
	if err := checkFilter(o.subject); err != nil {
		return fmt.Errorf("--subject %q: %w", o.subject, err)
	}
	type source struct{ stream, filter string }
	var sources []source
	streams := js.ListStreams(ctx)
	for info := range streams.Info() {
		for _, subj := range info.Config.Subjects {
			if f, ok := intersect(o.subject, subj); ok {
				sources = append(sources, source{info.Config.Name, f})
			}
		}
	}
	if err := streams.Err(); err != nil {
		return fmt.Errorf("list streams: %w", err)
	}
	if len(sources) == 0 {
		return fmt.Errorf("no stream holds subjects matching %q (streams are declared when accessbus starts)", o.subject)
	}
	policy := jetstream.DeliverNewPolicy
	if o.fromStart {
		policy = jetstream.DeliverAllPolicy
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	printed := 0
	var writeErr error
	for _, src := range sources {
		cons, err := js.OrderedConsumer(ctx, src.stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{src.filter},
			DeliverPolicy:  policy,
		})
		if err != nil {
			return fmt.Errorf("read %s from %s: %w", src.filter, src.stream, err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			line := renderEvent(m)
			mu.Lock()
			defer mu.Unlock()
			if ctx.Err() != nil {
				return
			}
			if _, err := w.Write(line); err != nil {
				writeErr = err
				cancel()
				return
			}
			printed++
			if o.limit > 0 && printed >= o.limit {
				cancel()
			}
		})
		if err != nil {
			return fmt.Errorf("read %s from %s: %w", src.filter, src.stream, err)
		}
		defer cc.Stop()
	}
	<-ctx.Done()
	mu.Lock()
	defer mu.Unlock()
	return writeErr
}

// tailLine is one printed event.
type tailLine struct {
	Stream        string          `json:"stream"`
	Seq           uint64          `json:"seq"`
	Subject       string          `json:"subject"`
	Time          time.Time       `json:"time"`
	MsgID         string          `json:"msg_id,omitempty"`
	Type          string          `json:"type,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 string          `json:"payload_base64,omitempty"`
	DecodeError   string          `json:"decode_error,omitempty"`
}

func renderEvent(m jetstream.Msg) []byte {
	l := tailLine{Subject: m.Subject()}
	if meta, err := m.Metadata(); err == nil {
		l.Stream, l.Seq, l.Time = meta.Stream, meta.Sequence.Stream, meta.Timestamp.UTC()
	}
	h := m.Headers()
	l.MsgID = h.Get(bus.HeaderMsgID)
	l.Type = h.Get(bus.HeaderPayloadType)
	payload, err := decodePayload(l.Type, m.Data())
	if err != nil {
		l.DecodeError = err.Error()
		l.PayloadBase64 = base64.StdEncoding.EncodeToString(m.Data())
	} else {
		l.Payload = payload
	}
	out, err := json.Marshal(l)
	if err != nil {
		out = fmt.Appendf(nil, `{"subject":%q,"decode_error":%q}`, m.Subject(), err.Error())
	}
	return append(out, '\n')
}

// decodePayload turns a payload into JSON: protobuf payloads by their type
// header through the registry, JSON payloads as they are.
func decodePayload(typ string, data []byte) (json.RawMessage, error) {
	if typ == "" {
		return nil, errors.New("no payload type header")
	}
	if strings.Contains(typ, "json") {
		if !json.Valid(data) {
			return nil, fmt.Errorf("payload of type %s is not valid JSON", typ)
		}
		return json.RawMessage(data), nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typ))
	if err != nil {
		return nil, fmt.Errorf("unknown payload type %s (is this accessbus older than the publisher?)", typ)
	}
	msg := mt.New().Interface()
	if err := proto.Unmarshal(data, msg); err != nil {
		return nil, fmt.Errorf("decode %s: %w", typ, err)
	}
	out, err := protojson.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("render %s as JSON: %w", typ, err)
	}
	return out, nil
}

func checkFilter(s string) error {
	if s == "" {
		return errors.New("empty subject filter")
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		if t == "" {
			return errors.New("empty token in subject filter")
		}
		if t == ">" && i != len(toks)-1 {
			return errors.New("'>' may only be the last token")
		}
	}
	return nil
}

// intersect returns the subject filter matching exactly what both filters
// match, and whether they overlap at all.
func intersect(a, b string) (string, bool) {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	var out []string
	for i := 0; ; i++ {
		switch {
		case i < len(at) && at[i] == ">":
			return strings.Join(append(out, bt[i:]...), "."), i < len(bt)
		case i < len(bt) && bt[i] == ">":
			return strings.Join(append(out, at[i:]...), "."), i < len(at)
		case i == len(at) || i == len(bt):
			return strings.Join(out, "."), len(at) == len(bt)
		case at[i] == "*":
			out = append(out, bt[i])
		case bt[i] == "*" || at[i] == bt[i]:
			out = append(out, at[i])
		default:
			return "", false
		}
	}
}
