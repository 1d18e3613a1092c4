from dmdb.cli import main

main()
