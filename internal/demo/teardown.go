package demo

import "errors"

// teardown is the stack of cleanups of a run. Every resource is pushed
// right after it is made, so an error anywhere undoes exactly what exists.
type teardown []func() error

func (t *teardown) push(fn func() error) { *t = append(*t, fn) }

// run undoes everything, newest first, and joins the errors.
func (t *teardown) run() error {
	var errs []error
	for i := len(*t) - 1; i >= 0; i-- {
		errs = append(errs, (*t)[i]())
	}
	*t = nil
	return errors.Join(errs...)
}
