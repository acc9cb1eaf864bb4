//go:build ci

package ui

import "time"

// prepareGL: fyne's headless test driver has no GL.
func prepareGL() time.Duration { return 0 }
