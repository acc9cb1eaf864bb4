//go:build ignore

// gen draws pult's icons: the application icon and one tray icon per state.
// The states differ in shape as well as colour, so they can be told apart
// without colour vision: free is a solid disc, busy a disc with a bar (no
// entry), dinner a triangle, break a disc with pause bars, offline a hollow
// ring. The application icon is also written as icon.ico, for Windows. Run
// with `go generate ./assets`.
package main

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
)

const ss = 4 // supersampling factor

type shape func(x, y float64) (color.NRGBA, bool) // x, y in [0,1]

var (
	green   = color.NRGBA{0x2e, 0x9e, 0x4f, 0xff}
	red     = color.NRGBA{0xd6, 0x3a, 0x2f, 0xff}
	amber   = color.NRGBA{0xe8, 0x9a, 0x12, 0xff}
	blue    = color.NRGBA{0x2f, 0x6f, 0xd6, 0xff}
	grey    = color.NRGBA{0x8a, 0x8f, 0x98, 0xff}
	white   = color.NRGBA{0xff, 0xff, 0xff, 0xff}
	navy    = color.NRGBA{0x1f, 0x3a, 0x5f, 0xff}
	outline = color.NRGBA{0x20, 0x20, 0x20, 0xff}
)

func dist(x, y float64) float64 { return math.Hypot(x-0.5, y-0.5) }

func disc(fill color.NRGBA) shape {
	return func(x, y float64) (color.NRGBA, bool) {
		d := dist(x, y)
		switch {
		case d <= 0.40:
			return fill, true
		case d <= 0.46:
			return outline, true
		}
		return color.NRGBA{}, false
	}
}

func over(base shape, top shape) shape {
	return func(x, y float64) (color.NRGBA, bool) {
		if c, ok := base(x, y); ok {
			if t, ok := top(x, y); ok && dist(x, y) <= 0.40 {
				return t, true
			}
			return c, true
		}
		return color.NRGBA{}, false
	}
}

func rect(x0, y0, x1, y1 float64, c color.NRGBA) shape {
	return func(x, y float64) (color.NRGBA, bool) {
		return c, x >= x0 && x <= x1 && y >= y0 && y <= y1
	}
}

func either(a, b shape) shape {
	return func(x, y float64) (color.NRGBA, bool) {
		if c, ok := a(x, y); ok {
			return c, true
		}
		return b(x, y)
	}
}

func triangle(fill color.NRGBA) shape {
	// An upward triangle with a dark outline.
	in := func(x, y, inset float64) bool {
		top, bottom := 0.08+inset*2, 0.90-inset
		if y < top || y > bottom {
			return false
		}
		half := (y - top) / (bottom - top) * (0.46 - inset*1.7)
		return math.Abs(x-0.5) <= half
	}
	return func(x, y float64) (color.NRGBA, bool) {
		switch {
		case in(x, y, 0.06):
			return fill, true
		case in(x, y, 0):
			return outline, true
		}
		return color.NRGBA{}, false
	}
}

func ring(c color.NRGBA) shape {
	return func(x, y float64) (color.NRGBA, bool) {
		d := dist(x, y)
		switch {
		case d <= 0.30:
			return color.NRGBA{}, false
		case d <= 0.40:
			return c, true
		case d <= 0.45:
			return outline, true
		}
		return color.NRGBA{}, false
	}
}

func roundedSquare(fill color.NRGBA, r float64) shape {
	return func(x, y float64) (color.NRGBA, bool) {
		cx := math.Max(math.Max(r-x, x-(1-r)), 0)
		cy := math.Max(math.Max(r-y, y-(1-r)), 0)
		return fill, math.Hypot(cx, cy) <= r
	}
}

func appIcon() shape {
	bg := roundedSquare(navy, 0.2)
	handset := func(x, y float64) (color.NRGBA, bool) {
		// A ring with a dot: a signal, the relay.
		d := dist(x, y)
		if d <= 0.10 || (d >= 0.22 && d <= 0.30) {
			return white, true
		}
		return color.NRGBA{}, false
	}
	badge := func(x, y float64) (color.NRGBA, bool) {
		return green, math.Hypot(x-0.78, y-0.22) <= 0.12
	}
	return func(x, y float64) (color.NRGBA, bool) {
		if c, ok := badge(x, y); ok {
			return c, true
		}
		c, ok := bg(x, y)
		if !ok {
			return c, false
		}
		if h, ok := handset(x, y); ok {
			return h, true
		}
		return c, true
	}
}

func draw(s shape, size int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	n := float64(size * ss)
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := (float64(px*ss+sx) + 0.5) / n
					y := (float64(py*ss+sy) + 0.5) / n
					if c, ok := s(x, y); ok {
						fa := float64(c.A) / 255
						r += float64(c.R) * fa
						g += float64(c.G) * fa
						b += float64(c.B) * fa
						a += fa
					}
				}
			}
			if a == 0 {
				continue
			}
			img.SetNRGBA(px, py, color.NRGBA{
				R: uint8(r / a), G: uint8(g / a), B: uint8(b / a),
				A: uint8(math.Round(a / float64(ss*ss) * 255)),
			})
		}
	}
	return img
}

func encodePNG(img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		log.Fatal(err)
	}
	return b.Bytes()
}

func render(s shape, size int, name string) {
	if err := os.WriteFile(name, encodePNG(draw(s, size)), 0o644); err != nil {
		log.Fatal(err)
	}
}

// renderICO writes a Windows icon with one PNG-compressed image per size
// (Windows Vista and later read those): the installer's Start-menu and
// Add/Remove Programs icon.
func renderICO(s shape, sizes []int, name string) {
	var dir, data bytes.Buffer
	le := binary.LittleEndian
	binary.Write(&dir, le, [3]uint16{0, 1, uint16(len(sizes))}) // reserved, type icon, count
	offset := 6 + 16*len(sizes)
	for _, size := range sizes {
		p := encodePNG(draw(s, size))
		dim := uint8(size % 256)                 // 0 means 256
		dir.Write([]byte{dim, dim, 0, 0})        // width, height, palette, reserved
		binary.Write(&dir, le, [2]uint16{1, 32}) // planes, bits per pixel
		binary.Write(&dir, le, [2]uint32{uint32(len(p)), uint32(offset + data.Len())})
		data.Write(p)
	}
	if err := os.WriteFile(name, append(dir.Bytes(), data.Bytes()...), 0o644); err != nil {
		log.Fatal(err)
	}
}

func main() {
	const tray = 64
	render(disc(green), tray, "tray-free.png")
	render(over(disc(red), rect(0.22, 0.42, 0.78, 0.58, white)), tray, "tray-busy.png")
	render(triangle(amber), tray, "tray-dinner.png")
	render(over(disc(blue), either(rect(0.33, 0.27, 0.44, 0.73, white), rect(0.56, 0.27, 0.67, 0.73, white))), tray, "tray-break.png")
	render(ring(grey), tray, "tray-offline.png")
	render(appIcon(), 256, "icon.png")
	renderICO(appIcon(), []int{16, 24, 32, 48, 64, 256}, "icon.ico")
}
