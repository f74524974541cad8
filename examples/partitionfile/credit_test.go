package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCreditPlus adds 5 to decimals of every shape: the sum is exact and
// keeps the decimals of the input.
func TestCreditPlus(t *testing.T) {
	for in, want := range map[string]string{
		"80":                       "85",
		"0":                        "5",
		"-5":                       "0",
		"-7":                       "-2",
		"+10":                      "15",
		"10.50":                    "15.50",
		"0.01":                     "5.01",
		"-0.25":                    "4.75",
		"-5.01":                    "-0.01",
		"-12.3":                    "-7.3",
		"99999999999999999999.99":  "100000000000000000004.99",
		"0.1000000000000000000001": "5.1000000000000000000001",
	} {
		c, err := parseCredit(in)
		require.NoError(t, err, in)
		require.Equal(t, want, c.plus(increase).String(), in)
		require.Equal(t, in == "+10", c.String() != in, "%s is written back as it was read", in)
	}
	for _, bad := range []string{"", "abc", "1e3", "1/3", "1.", ".5", "1,5", "1.2.3", "--1", " 1", "0x10", "NaN"} {
		_, err := parseCredit(bad)
		require.Error(t, err, bad)
	}
}
