package main

import (
	"fmt"
	"math"
	"strings"
)

// pairUp matches each pooler's runs by repeat, keeping the repeats where
// both produced numbers with CPU figures.
func pairUp(bouncer, pgrotate []measurement) []runPair {
	var pairs []runPair
	for i := range min(len(bouncer), len(pgrotate)) {
		b, r := bouncer[i], pgrotate[i]
		if b.ok() && r.ok() && b.hasCPU && r.hasCPU && b.tps > 0 && b.cpuPerTx > 0 {
			pairs = append(pairs, runPair{bouncer: b, pgrotate: r})
		}
	}
	return pairs
}

func (p runPair) cpuRatio() float64 {
	return float64(p.pgrotate.cpuPerTx) / float64(p.bouncer.cpuPerTx)
}
func (p runPair) tpsRatio() float64 { return p.pgrotate.tps / p.bouncer.tps }

// hasP99: both runs have a latency figure (p99Ratio is 0 otherwise).
func (p runPair) hasP99() bool { return p.bouncer.p99 > 0 && p.pgrotate.p99 > 0 }

func (p runPair) p99Ratio() float64 {
	if !p.hasP99() {
		return 0
	}
	return float64(p.pgrotate.p99) / float64(p.bouncer.p99)
}

// pairTable shows the R/B ratio of every pair of runs, with the CPU figures
// behind it (a high ratio can be a dear pgrotate run or a cheap PgBouncer
// one), and, per workload and over the whole run, how many pairs favour
// pgrotate, with a sign test: the medians of the main table are taken over
// runs minutes apart, while the two runs of a pair ran back to back. A pair
// count far from half (small p) says which pooler is better beyond the
// machine's noise; a count near half says the two cannot be told apart
// here.
func pairTable(rows []row) string {
	var b strings.Builder
	b.WriteString("\n## Paired runs\n\n")
	b.WriteString(markdownLine([]string{"workload", "-M", "pool mode", "clients", "CPU R/B of each pair", "CPU µs/tx R / B of each pair", "tps R/B of each pair", "p99 R/B of each pair"}))
	b.WriteString(markdownLine([]string{"---", "---", "---", "---:", "---", "---", "---", "---"}))
	byWorkload := map[string]*pairCount{}
	var order []string
	var all pairCount
	for _, r := range rows {
		if len(r.pairs) < 2 {
			continue
		}
		c := byWorkload[r.workload]
		if c == nil {
			c = &pairCount{}
			byWorkload[r.workload] = c
			order = append(order, r.workload)
		}
		var cpu, micros, tps, p99 []string
		for _, p := range r.pairs {
			cpu, tps = append(cpu, fmt.Sprintf("%.2f", p.cpuRatio())), append(tps, fmt.Sprintf("%.2f", p.tpsRatio()))
			p99 = append(p99, ratioCell(p.hasP99(), float64(p.pgrotate.p99), float64(p.bouncer.p99)))
			micros = append(micros, fmt.Sprintf("%.1f / %.1f", microseconds(p.pgrotate.cpuPerTx), microseconds(p.bouncer.cpuPerTx)))
			c.add(p)
			all.add(p)
		}
		b.WriteString(markdownLine([]string{r.workload, r.protocol, r.mode, fmt.Sprint(r.clients),
			strings.Join(cpu, " · "), strings.Join(micros, " · "), strings.Join(tps, " · "), strings.Join(p99, " · ")}))
	}
	if all.n() == 0 {
		return ""
	}
	b.WriteString("\nEach pair is one repeat of a row, the two poolers run back to back (R/B: pgrotate ÷ PgBouncer).\n")
	b.WriteString("p is the two-sided sign test: how likely so uneven a count would be if the poolers were alike.\n\n")
	for _, w := range order {
		b.WriteString(byWorkload[w].summary(w))
	}
	if len(order) > 1 {
		b.WriteString(all.summary("all"))
	}
	return b.String()
}

// pairCount tallies pairs: their ratios, and how many favour pgrotate.
type pairCount struct {
	cpu, tps, p99        []float64
	lessCPU, moreCPU     int // pgrotate's CPU per transaction below / above PgBouncer's
	fasterTps, slowerTps int
	lessP99, moreP99     int // pgrotate's p99 latency below / above PgBouncer's
}

func (c *pairCount) add(p runPair) {
	cr, tr := p.cpuRatio(), p.tpsRatio()
	c.cpu, c.tps = append(c.cpu, cr), append(c.tps, tr)
	switch {
	case cr < 1:
		c.lessCPU++
	case cr > 1:
		c.moreCPU++
	}
	switch {
	case tr > 1:
		c.fasterTps++
	case tr < 1:
		c.slowerTps++
	}
	if !p.hasP99() {
		return
	}
	pr := p.p99Ratio()
	c.p99 = append(c.p99, pr)
	switch {
	case pr < 1:
		c.lessP99++
	case pr > 1:
		c.moreP99++
	}
}

func (c *pairCount) n() int { return len(c.cpu) }

// summary is one line for the pairs of a workload (or "all").
func (c *pairCount) summary(what string) string {
	cpu, tps := append([]float64(nil), c.cpu...), append([]float64(nil), c.tps...)
	s := fmt.Sprintf("- %s, %d pairs: CPU R/B median %.3f, pgrotate lower in %d and higher in %d (p = %.2g); "+
		"tps R/B median %.3f, pgrotate faster in %d and slower in %d (p = %.2g)",
		what, c.n(), medianOf(cpu), c.lessCPU, c.moreCPU, signTest(c.lessCPU, c.moreCPU),
		medianOf(tps), c.fasterTps, c.slowerTps, signTest(c.fasterTps, c.slowerTps))
	if len(c.p99) > 0 {
		s += fmt.Sprintf("; p99 R/B median %.3f, pgrotate lower in %d and higher in %d (p = %.2g)",
			medianOf(append([]float64(nil), c.p99...)), c.lessP99, c.moreP99, signTest(c.lessP99, c.moreP99))
	}
	return s + ".\n"
}

// signTest is the two-sided p-value of a sign test: the chance, with each
// of a+b pairs equally likely to go either way, of a split at least as
// uneven as a to b.
func signTest(a, b int) float64 {
	n := a + b
	if n == 0 {
		return 1
	}
	k := min(a, b)
	tail := 0.0
	for i := 0; i <= k; i++ {
		tail += math.Exp(logChoose(n, i) - float64(n)*math.Ln2)
	}
	return min(1, 2*tail)
}

func logChoose(n, k int) float64 {
	ln, _ := math.Lgamma(float64(n + 1))
	lk, _ := math.Lgamma(float64(k + 1))
	lnk, _ := math.Lgamma(float64(n - k + 1))
	return ln - lk - lnk
}
