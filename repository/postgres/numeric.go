package postgres

import (
	"bytes"
	"math"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"
)

// registerTypes gives a pgx connection of the repository's pool a faster
// encoder of Go numbers into NUMERIC columns in binary (a COPY's rows, a
// prepared statement's parameters). pgx's own goes through math/big for
// every value: in a CSV import into a NUMERIC column it took a sixth of the
// client's CPU, most of its garbage included. The value sent is the same:
// the shortest decimal that reads back as the float64, as pgx sends.
func registerTypes(m *pgtype.Map) {
	m.RegisterType(&pgtype.Type{Name: "numeric", OID: pgtype.NumericOID, Codec: numericCodec{}})
}

// numericCodec is pgx's NumericCodec with float64, float32, int64 and int
// encoded in binary without math/big.
type numericCodec struct{ pgtype.NumericCodec }

func (c numericCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if format == pgtype.BinaryFormatCode {
		switch value.(type) {
		case float64, float32, int64, int:
			return numericPlan{}
		}
	}
	return c.NumericCodec.PlanEncode(m, oid, format, value)
}

type numericPlan struct{}

func (numericPlan) Encode(value any, buf []byte) ([]byte, error) {
	var scratch [32]byte
	var s []byte
	switch v := value.(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			f := pgtype.Float8{Float64: v, Valid: true}
			return pgtype.NumericCodec{}.PlanEncode(nil, pgtype.NumericOID, pgtype.BinaryFormatCode, f).Encode(f, buf)
		}
		s = strconv.AppendFloat(scratch[:0], v, 'f', -1, 64)
	case float32:
		return numericPlan{}.Encode(float64(v), buf)
	case int64:
		s = strconv.AppendInt(scratch[:0], v, 10)
	case int:
		s = strconv.AppendInt(scratch[:0], int64(v), 10)
	}
	return appendNumeric(buf, s), nil
}

// appendNumeric appends the binary NUMERIC of the plain decimal s ("-12.5"):
// its base-10,000 digits without leading or trailing zero digits, the
// weight of the first, the sign, and the scale (the decimals s has).
func appendNumeric(buf, s []byte) []byte {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	whole, frac, _ := bytes.Cut(s, []byte("."))
	whole = bytes.TrimLeft(whole, "0")
	// A float64 written by 'f' -1 has at most 309 whole decimals and 324
	// fraction ones: 160 digits of four decimals.
	var digits [200]int16
	n := 0
	group := func(part []byte) { // up to four decimals; fewer at the fraction's end stand for the first ones
		var d int16
		for _, c := range part {
			d = d*10 + int16(c-'0')
		}
		for range 4 - len(part) {
			d *= 10
		}
		digits[n] = d
		n++
	}
	if lead := len(whole) % 4; lead > 0 {
		// The first digit of the whole part has the decimals left over,
		// as its last ones: no padding after them.
		var d int16
		for _, c := range whole[:lead] {
			d = d*10 + int16(c-'0')
		}
		digits[n] = d
		n++
		whole = whole[lead:]
	}
	for ; len(whole) > 0; whole = whole[4:] {
		group(whole[:4])
	}
	weight := n - 1
	for i := 0; i < len(frac); i += 4 {
		group(frac[i:min(i+4, len(frac))])
	}
	first := 0
	for first < n && digits[first] == 0 {
		first++
		weight--
	}
	for n > first && digits[n-1] == 0 {
		n--
	}
	var sign uint16
	switch {
	case first == n:
		weight = 0
	case neg:
		sign = 0x4000
	}
	buf = appendUint16(buf, uint16(n-first))
	buf = appendUint16(buf, uint16(int16(weight)))
	buf = appendUint16(buf, sign)
	buf = appendUint16(buf, uint16(len(frac)))
	for _, d := range digits[first:n] {
		buf = appendUint16(buf, uint16(d))
	}
	return buf
}

func appendUint16(buf []byte, v uint16) []byte { return append(buf, byte(v>>8), byte(v)) }
