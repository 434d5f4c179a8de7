package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gregorhq/gregor/bench/internal/proc"
)

// meter measures one interval: wall time, this process's CPU and the summed
// CPU of the broker processes.
type meter struct {
	pids    []int
	start   time.Time
	self0   time.Duration
	broker0 proc.Times
}

func startMeter(pids []int) (*meter, error) {
	m := &meter{pids: pids}
	var err error
	if m.broker0, err = brokerCPU(pids); err != nil {
		return nil, err
	}
	m.self0 = proc.SelfCPU()
	m.start = time.Now()
	return m, nil
}

// finish ends the interval. It returns the first of errs (the run's own
// errors), or a result holding the interval's wall time, own CPU and the
// brokers' CPU, for the caller to add what it counted.
func (m *meter) finish(errs ...error) (*result, error) {
	wall := time.Since(m.start)
	self := proc.SelfCPU() - m.self0
	b, err := brokerCPU(m.pids)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("broker CPU at the end (did a broker exit?): %w", err)
	}
	return &result{wall: wall, cpu: self, brokerC: b.User + b.System - m.broker0.User - m.broker0.System,
		brokerUser: b.User - m.broker0.User}, nil
}

func brokerCPU(pids []int) (proc.Times, error) {
	var sum proc.Times
	for _, pid := range pids {
		c, err := proc.CPUTimes(pid)
		if err != nil {
			return proc.Times{}, err
		}
		sum.User += c.User
		sum.System += c.System
	}
	return sum, nil
}

// startReading starts the meter for a consume run and the context the
// readers stop on: cancelled by the caller, or at -duration after the
// meter started.
func startReading(ctx context.Context, c config) (*meter, context.Context, context.CancelFunc, error) {
	m, err := startMeter(c.brokerPIDs)
	if err != nil {
		return nil, nil, nil, err
	}
	if c.duration > 0 {
		rctx, cancel := context.WithDeadline(ctx, m.start.Add(c.duration))
		return m, rctx, cancel, nil
	}
	rctx, cancel := context.WithCancel(ctx)
	return m, rctx, cancel, nil
}
