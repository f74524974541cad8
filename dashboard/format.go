package dashboard

import (
	"regexp"
	"strings"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/format"
)

// secretKey is a name whose value is a secret.
const secretKey = `(?:[a-z_]*password|passwd|pwd|secret|token|api[_-]?key)`

var (
	// urlPassword is the password of a URL's user information
	// (postgres://user:secret@host, also with JSON's escaped slashes): up
	// to the last '@' of the word, for a password may hold one.
	urlPassword = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*:(?:\\?/){2}[^\s:/@\\]*):\S*@`)
	// driverPassword is the password of a Go MySQL DSN: user:secret@tcp(…).
	driverPassword = regexp.MustCompile(`(?i)([\w.-]+):[^\s:@/]+@((?:tcp|unix)\()`)
	// keyedSecret is a value given under a name that says it is secret:
	// password=…, "token": "…", PGPASSWORD=…, api_key => …, also quoted
	// inside a quoted string (\"password\":\"…\"), or URL-encoded.
	keyedSecret = regexp.MustCompile(`(?i)(` + secretKey + `\\?["']?\s*(?:=>|[=:]|%3d)\s*)` +
		`(\\"(?:[^"\\]|\\[^"])*(?:\\"|$)|"(?:[^"\\]|\\.)*(?:"|$)|'(?:[^'\\]|\\.)*(?:'|$)|[^\s&;,"'}\\]+)`)
	// flagSecret is a secret flag's value: --password secret.
	flagSecret = regexp.MustCompile(`(?i)(--?` + secretKey + `\s+)\S+`)
	// bearer is an HTTP Authorization header's token.
	bearer = regexp.MustCompile(`(?i)\b((?:authorization:\s*)?bearer\s+|authorization:\s*basic\s+)[^\s"',;]+`)
	// secretName is a parameter name that says its value is secret.
	secretName = regexp.MustCompile(`(?i)password|passwd|secret|token|api[_-]?key|credential|private`)
)

// redact hides the passwords and secrets written in s: a URL's or a DSN's
// password, any value given as password=, token: and the like, a secret
// flag's value, an Authorization header's credentials.
func redact(s string) string {
	s = urlPassword.ReplaceAllString(s, "$1:xxxxx@")
	s = driverPassword.ReplaceAllString(s, "$1:xxxxx@$2")
	s = keyedSecret.ReplaceAllString(s, "${1}xxxxx")
	s = flagSecret.ReplaceAllString(s, "${1}xxxxx")
	return bearer.ReplaceAllString(s, "${1}xxxxx")
}

// paramValue is a parameter's value as shown: hidden whole when its name
// says it is secret, else with the secrets written in it hidden.
func paramValue(name string, p batch.JobParameter) string {
	if secretName.MatchString(name) {
		return "xxxxx"
	}
	return redact(p.String())
}

// formatParams is params as name=value words, secrets hidden.
func formatParams(params batch.JobParameters) []string {
	var out []string
	for _, name := range params.Names() {
		out = append(out, name+"="+paramValue(name, params[name]))
	}
	return out
}

// when formats t in the dashboard's time zone; "" for the zero time.
func (h *Handler) when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(h.opts.Location).Format("2006-01-02 15:04:05")
}

// duration is how long something that started at start ran: until end, or
// until now while it runs.
func duration(start, end time.Time, running bool) string {
	switch {
	case start.IsZero():
		return ""
	case end.IsZero() && running:
		return roughly(time.Since(start))
	case end.IsZero():
		return ""
	}
	return roughly(end.Sub(start))
}

// roughly writes d rounded to the second, or under a second to the
// millisecond.
func roughly(d time.Duration) string { return format.Roughly(d).String() }

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > 160 {
		s = string(r[:157]) + "..."
	}
	return s
}
