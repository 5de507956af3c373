"""The Race: 2-D loss surfaces, racers, explanations, basin maps, sessions."""
