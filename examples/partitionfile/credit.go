package main

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
)

// credit is an exact decimal amount, unscaled × 10^-scale, that keeps the
// number of decimals it was written with: "10" stays without decimals,
// "10.50" keeps two. No float is involved, so adding to it never rounds.
type credit struct {
	unscaled *big.Int
	scale    int
}

// decimalSyntax is what a credit looks like: an optional sign, digits, and
// optionally a point and more digits. No exponent, no thousands separator.
var decimalSyntax = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?$`)

// parseCredit parses a decimal number such as "80", "-3.5" or "1234.05".
func parseCredit(s string) (credit, error) {
	if !decimalSyntax.MatchString(s) {
		return credit{}, fmt.Errorf("credit %q: not a decimal number", s)
	}
	whole, frac, _ := strings.Cut(s, ".")
	u, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		return credit{}, fmt.Errorf("credit %q: not a decimal number", s)
	}
	return credit{unscaled: u, scale: len(frac)}, nil
}

// plus returns c + n, with the scale of c.
func (c credit) plus(n int64) credit {
	step := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(c.scale)), nil)
	step.Mul(step, big.NewInt(n))
	return credit{unscaled: step.Add(step, c.unscaled), scale: c.scale}
}

// String writes c with its scale's number of decimals: "85", "-1.50".
func (c credit) String() string {
	digits := new(big.Int).Abs(c.unscaled).String()
	if c.scale > 0 {
		if len(digits) <= c.scale {
			digits = strings.Repeat("0", c.scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-c.scale] + "." + digits[len(digits)-c.scale:]
	}
	if c.unscaled.Sign() < 0 {
		return "-" + digits
	}
	return digits
}
