from csn_model.cli import main

raise SystemExit(main())
