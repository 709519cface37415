"""Understanding: Rasa routes a transcript and runs the dialogue. Text or a digit in, the
route and the bot's actions (say, transfer, hang up) out."""
