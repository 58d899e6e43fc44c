package files

// Hooks for the external tests in files_test.

// TempSuffix ends every temp file the writer makes.
const TempSuffix = tempSuffix

// SetRename replaces the rename between temp file and target, to fail there.
func SetRename(w *Writer, rename func(oldpath, newpath string) error) { w.rename = rename }
