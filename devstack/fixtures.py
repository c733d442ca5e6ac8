"""Real catalogue data that tests and benchmarks stage (songs are never invented)."""

from __future__ import annotations

# Real Band of Horses songs: singles from several albums, then the rest of
# "Infinite Arms" (the album of the Spotify test payloads).
BAND_OF_HORSES_SONGS = ["The Funeral", "No One's Gonna Love You", "Is There a Ghost", "Laredo",
                        "Ode to LRC", "Casual Party", "Factory", "Compliments", "Blue Beard",
                        "On My Way Back Home", "Infinite Arms", "Dilly", "Evening Kitchen",
                        "Older", "For Annabelle", "NW Apt."]
