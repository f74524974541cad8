package postgres

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"
)

// TestNumericEncodesAsPgx: the binary NUMERIC of a Go number reads back
// with pgx's own decoder as the value pgx's encoder sends.
func TestNumericEncodesAsPgx(t *testing.T) {
	ours, theirs := pgtype.NewMap(), pgtype.NewMap()
	registerTypes(ours)
	text := func(m *pgtype.Map, v any) string {
		b, err := m.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, v, nil)
		require.NoError(t, err, "%v", v)
		var n pgtype.Numeric
		require.NoError(t, theirs.Scan(pgtype.NumericOID, pgtype.BinaryFormatCode, b, &n), "%v", v)
		s, err := theirs.Encode(pgtype.NumericOID, pgtype.TextFormatCode, n, nil)
		require.NoError(t, err)
		return string(s)
	}
	values := []any{0.0, math.Copysign(0, -1), 1.0, -1.0, 0.5, 12.5, 7.0, 100.0, 10000.0, 12345.6789, 0.0001, 0.00001, 1e-7,
		-1234.56, 1e20, 1.5e21, math.MaxFloat64, math.SmallestNonzeroFloat64, -math.MaxFloat64, 123456789.123,
		0.1, 0.2, 0.30000000000000004, float32(2.5), int64(0), int64(-42), int64(math.MaxInt64), int64(math.MinInt64),
		int(10000), int(99990000), math.NaN(), math.Inf(1), math.Inf(-1)}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		f := rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
		values = append(values, f, math.Round(f*100)/100, rng.Int64()>>rng.IntN(63))
	}
	for _, v := range values {
		require.Equal(t, text(theirs, v), text(ours, v), "%v (%T)", v, v)
	}
	// The text format and other types go to pgx's codec.
	for _, v := range []any{12.5, int64(7), pgtype.Numeric{Int: big.NewInt(314159), Exp: -5, Valid: true}} {
		want, err := theirs.Encode(pgtype.NumericOID, pgtype.TextFormatCode, v, nil)
		require.NoError(t, err)
		got, err := ours.Encode(pgtype.NumericOID, pgtype.TextFormatCode, v, nil)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	}
	require.Equal(t, text(theirs, pgtype.Numeric{Int: big.NewInt(314159), Exp: -5, Valid: true}),
		text(ours, pgtype.Numeric{Int: big.NewInt(314159), Exp: -5, Valid: true}))
}

func BenchmarkNumericEncode(b *testing.B) {
	for name, m := range map[string]*pgtype.Map{"pgx": pgtype.NewMap(), "chunkwise": func() *pgtype.Map {
		m := pgtype.NewMap()
		registerTypes(m)
		return m
	}()} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 64)
			for i := 0; b.Loop(); i++ {
				var err error
				if buf, err = m.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, float64(i%10000)+0.25, buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
