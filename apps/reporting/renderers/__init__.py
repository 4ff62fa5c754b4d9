"""Report renderers: PDF (WeasyPrint), XLSX (openpyxl) and CSV, each from a ReportContent."""
