"""What a resident reads of a bound archive: sections, records, trends, the access log.

The service is ``records.service.RecordsService``; this package imports nothing itself, so the
import's worker processes can use ``records.present`` without loading the service's database layer.
"""
