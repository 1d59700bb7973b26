"""The assessment's statistics: stock figures kept current per institution (``tally``), one day's
snapshot of them, flow figures within a period, and their pages and exports."""
