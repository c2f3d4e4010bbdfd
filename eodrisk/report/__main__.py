"""``python -m eodrisk.report --date D [--out FILE]``."""

from eodrisk.report import main

raise SystemExit(main())
