package notifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/services/notifier"
	"github.com/accessbus/accessbus/services/notifier/internal/testcert"
	"github.com/accessbus/accessbus/services/notifier/mailcapture"
)

const smtpPassword = "smtp-pw-5d1e0c7b9a"

func withTLSAndAuth(t *testing.T, password string) envOption {
	serverTLS, clientTLS := testcert.New(t)
	return func(e *env, o *mailcapture.Options) {
		o.TLSConfig, o.Username, o.Password = serverTLS, "accessbus", smtpPassword
		e.tlsCfg = clientTLS
		e.cfg.SMTPTLS, e.cfg.SMTPUsername = "starttls-required", "accessbus"
		e.cfg.SMTPPassword = notifier.Password{Secret: telemetry.NewSecret(password)}
	}
}

// everything returns every text the notifier left behind: its logs, the
// events on the bus and the captured emails.
func (e *env) everything(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(e.logs.String())
	for _, m := range e.notify.Messages() {
		b.Write(m.Data())
	}
	msgs, err := e.capture.Store().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		b.WriteString(m.Raw)
	}
	return b.String()
}

func TestSMTPPasswordNeverAppears(t *testing.T) {
	t.Run("right password over STARTTLS", func(t *testing.T) {
		e := newEnv(t, withTLSAndAuth(t, smtpPassword))
		e.start(t)
		e.publish(t, subjects.CatalogConnectorCreated, "created-c1", connectorCreated("c1", "", owner("i-bob", "bob@example.test")))
		e.mails(t, 1)
		e.notify.WaitFor(t, 1, wait)
		if all := e.everything(t); strings.Contains(all, smtpPassword) {
			t.Fatal("the SMTP password appears in logs, events or emails")
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		wrong := "wrong-" + smtpPassword
		e := newEnv(t, withTLSAndAuth(t, wrong))
		e.cfg.MaxAttempts = 2
		e.start(t)
		e.publish(t, subjects.CatalogConnectorCreated, "created-c1", connectorCreated("c1", "", owner("i-bob", "bob@example.test")))
		e.notify.WaitFor(t, 2, wait)
		e.drained(t, subjects.StreamCatalog, notifier.ConsumerConnectors)
		_, failed := e.events(t)
		if len(failed) != 2 || failed[0].GetSmtpCode() != 535 || failed[0].GetPermanent() || !failed[1].GetPermanent() {
			t.Fatalf("failed %v", failed)
		}
		all := e.everything(t)
		if strings.Contains(all, smtpPassword) || strings.Contains(all, wrong) {
			t.Fatal("the SMTP password appears in logs, events or emails")
		}
		if !strings.Contains(all, "535") {
			t.Fatal("the authentication failure is not reported")
		}
	})
}

func TestConfigFromEnvAndPasswordRedaction(t *testing.T) {
	t.Setenv("ACCESSBUS_SMTP_ADDR", "smtp.example.test:587")
	t.Setenv("ACCESSBUS_SMTP_USERNAME", "accessbus")
	t.Setenv("ACCESSBUS_SMTP_PASSWORD", smtpPassword)
	t.Setenv("ACCESSBUS_MAIL_FROM", "accessbus <accessbus@example.test>")
	t.Setenv("ACCESSBUS_PUBLIC_BASE_URL", "https://ab.example.test")
	t.Setenv("ACCESSBUS_MAIL_PER_RECIPIENT_PER_HOUR", "5")
	cfg, err := notifier.ConfigFromEnv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SMTPAddr != "smtp.example.test:587" || cfg.SMTPPassword.Reveal() != smtpPassword || cfg.SMTPTLS != "starttls-required" ||
		cfg.PerRecipientPerHour != 5 || cfg.SMTPTimeout != 30*time.Second || cfg.MaxAttempts != 8 {
		t.Fatalf("config %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(cfg)
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), string(js)} {
		if strings.Contains(s, smtpPassword) {
			t.Fatalf("the password prints: %s", s)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := notifier.Config{SMTPAddr: "smtp.example.test:25", SMTPTLS: "none", SMTPTimeout: time.Second, MailFrom: "a@example.test",
		PublicBaseURL: "http://127.0.0.1:8080", PerRecipientPerHour: 1, MaxAttempts: 1, RetryBase: time.Second, RetryMax: time.Second,
		MaxEventAge: time.Hour, Workers: 1}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		change func(*notifier.Config)
		want   string
	}{
		"no addr":           {func(c *notifier.Config) { c.SMTPAddr = "" }, "ACCESSBUS_SMTP_ADDR is not set"},
		"bad addr":          {func(c *notifier.Config) { c.SMTPAddr = "smtp.example.test" }, "ACCESSBUS_SMTP_ADDR"},
		"bad tls":           {func(c *notifier.Config) { c.SMTPTLS = "ssl" }, "ACCESSBUS_SMTP_TLS"},
		"auth in the clear": {func(c *notifier.Config) { c.SMTPUsername = "u" }, "in the clear"},
		"password alone": {func(c *notifier.Config) {
			c.SMTPPassword = notifier.Password{Secret: telemetry.NewSecret("x")}
		}, "without ACCESSBUS_SMTP_USERNAME"},
		"no from":      {func(c *notifier.Config) { c.MailFrom = "" }, "ACCESSBUS_MAIL_FROM is not set"},
		"bad from":     {func(c *notifier.Config) { c.MailFrom = "not an address" }, "ACCESSBUS_MAIL_FROM"},
		"bad base url": {func(c *notifier.Config) { c.PublicBaseURL = "accessbus.example.test" }, "ACCESSBUS_PUBLIC_BASE_URL"},
		"zero rate":    {func(c *notifier.Config) { c.PerRecipientPerHour = 0 }, "ACCESSBUS_MAIL_PER_RECIPIENT_PER_HOUR"},
		"retry":        {func(c *notifier.Config) { c.RetryMax = time.Millisecond }, "ACCESSBUS_MAIL_RETRY_MAX"},
		"workers":      {func(c *notifier.Config) { c.Workers = 0 }, "ACCESSBUS_NOTIFIER_WORKERS"},
	} {
		c := good
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func TestRunRefusesAnInvalidConfig(t *testing.T) {
	e := newEnv(t)
	e.cfg.SMTPAddr = ""
	err := notifier.Run(context.Background(), notifier.Deps{Config: e.cfg})
	if err == nil || !strings.Contains(err.Error(), "ACCESSBUS_SMTP_ADDR is not set") {
		t.Fatalf("Run: %v", err)
	}
}
