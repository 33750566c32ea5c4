"""Analytics reports: a `ReportDocument` built from the serving tables for a period (`sections`), and
rendered to CSV, Excel, PDF or JSON (`formats`, one module per format), in Arabic or English.

Building and rendering are separate so that one query serves every format a report asks for.
"""
