from alphaspt.cli import main

raise SystemExit(main())
