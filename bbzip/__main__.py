"""python -m bbzip: the bbzip command line."""
from bbzip.cli.main import main

main()
