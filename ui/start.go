package ui

// StartFailure is the title and text of a message box saying why the
// desktop app did not start, in the first of languages pult speaks (as
// Config.Languages). link is a tel: or callto: link without a number, when
// that is why; else detail (English, as printed on stderr) is the reason.
// logPath, when not "", names the log file the failure was also written to.
func StartFailure(languages []string, link, detail, logPath string) (title, text string) {
	w := newWords(languages)
	if link != "" {
		text = w.T("start.badLink", "Link", link)
	} else {
		text = w.T("start.failed", "Err", detail)
	}
	if logPath != "" {
		text += "\n\n" + w.T("start.logged", "Path", logPath)
	}
	return w.T("start.title"), text
}
