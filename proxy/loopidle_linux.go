//go:build linux

package proxy

// Connections kept idle on the event loop.
//
// A transaction on the loop used to take its server connection from puddle
// and give it back there: two mutexes, a semaphore and a clock reading per
// transaction, on memory shared with every goroutine that touches the pool
// (perf, select-only transactions: ~1.3 % of pgrotate's samples, where the
// whole CPU gap to PgBouncer is a few per cent). The loop now keeps the
// connections its transactions give back in a stack of its own
// (pool.loopIdle) and takes the next one from there, newest first. puddle
// counts them as acquired, so whatever needs puddle's idle connections
// reclaims them first (reclaimLoopIdle): a client about to wait on a
// goroutine, each round of pool upkeep (idle timeout, lifetime, health
// check), a rotation retiring old connections, and closing the pool.
//
// A reclaimed connection counts as used at that moment: upkeep sees idle
// time from its round before (at most one upkeep interval late), and a
// connection the loop no longer needs ages in puddle from then on, so a
// pool that a burst grew still shrinks under a steady load.

// keepOnLoop takes a connection of the current generation given back
// after a transaction on the loop: kept for the loop's next transaction,
// or given back to puddle while goroutines wait there. Loop goroutine
// only.
func (p *pool) keepOnLoop(l *lease, loop *eventLoop) {
	if !p.loopIdleListed {
		p.loopIdleListed = true
		p.evloop.Store(loop)
		loop.idlePools = append(loop.idlePools, p)
	}
	l.Value().goIdle()
	p.loopIdle = append(p.loopIdle, l)
	if len(p.loopIdle) == 1 {
		p.loopKeeps.Store(true)
	}
	// Looked at after loopKeeps is set, as a goroutine about to wait
	// counts itself in goWaiters before it looks at loopKeeps
	// (reclaimLoopIdle): one of the two sees the other, so no goroutine
	// waits in puddle's queue while the loop keeps a connection idle.
	if p.goWaiters.Load() > 0 {
		p.flushLoopIdle()
	}
}

// popLoopIdle takes the newest connection kept on the loop, nil if none.
// Loop goroutine only.
func (p *pool) popLoopIdle() *lease {
	n := len(p.loopIdle) - 1
	if n < 0 {
		return nil
	}
	l := p.loopIdle[n]
	p.loopIdle[n] = nil
	p.loopIdle = p.loopIdle[:n]
	if n == 0 {
		p.loopKeeps.Store(false)
	}
	return l
}

// flushLoopIdle gives every connection kept on the loop back to puddle,
// oldest first (puddle hands out the newest first). Loop goroutine only.
func (p *pool) flushLoopIdle() {
	for i, l := range p.loopIdle {
		l.Release()
		p.loopIdle[i] = nil
	}
	p.loopIdle = p.loopIdle[:0]
	p.loopKeeps.Store(false)
}

// reclaimLoopIdle has the loop give the connections it keeps back to
// puddle, and waits until it has (or has stopped: it gives them back as it
// stops). Not on the loop goroutine. A goroutine about to wait for a
// connection counts itself in goWaiters first (see keepOnLoop).
func (p *pool) reclaimLoopIdle() {
	loop := p.evloop.Load()
	if loop == nil || !p.loopKeeps.Load() {
		return
	}
	done := make(chan struct{})
	if !loop.post(func() { p.flushLoopIdle(); close(done) }) {
		return
	}
	select {
	case <-done:
	case <-loop.done:
	}
}
