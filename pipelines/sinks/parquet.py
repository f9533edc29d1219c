"""customer_scores.parquet: a pyarrow ParquetWriter on a hidden temporary file, renamed at commit."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from models.scoring.schema import Column
from pipelines.sinks.arrow import arrow_schema
from pipelines.sinks.files import fsync_file, publish, temp_beside


class ParquetSink:
    """Streams Arrow chunks (one row group each) into a temporary Parquet file beside `target`."""

    name = "parquet"

    def __init__(self, target: Path, columns: list[Column]) -> None:
        self.target = Path(target)
        self.schema = arrow_schema(columns)
        self.tmp = temp_beside(self.target)
        self.writer: pq.ParquetWriter | None = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")

    def temp_paths(self) -> set[Path]:
        """The temporary files this sink owns."""
        return {self.tmp}

    def write(self, table: pa.Table) -> None:
        """Append one chunk."""
        assert self.writer is not None, "ParquetSink.write after verify()"
        self.writer.write_table(table)

    def verify(self) -> dict:
        """Close the writer and fsync; the row count read back from the file footer."""
        self.close_writer()
        fsync_file(self.tmp)
        return {"path": str(self.target), "rows": pq.ParquetFile(self.tmp).metadata.num_rows}

    def commit(self) -> None:
        """Rename the temporary file onto the output."""
        publish(self.tmp, self.target)

    def close_writer(self) -> None:
        """Finish the Parquet footer (once)."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()

    def close(self) -> None:
        """Release the writer; delete the temporary file unless it was committed."""
        try:
            self.close_writer()
        finally:
            self.tmp.unlink(missing_ok=True)
