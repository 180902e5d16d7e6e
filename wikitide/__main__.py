from wikitide.cli import main

main()
