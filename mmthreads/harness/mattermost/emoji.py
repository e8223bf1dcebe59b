"""System emoji names accepted for reactions.

A subset of the short names in Mattermost's generated ``model/emoji_data.go`` (built from
``emoji-datasource``): every name the bridge uses plus common ones people react with.  Aliases
are listed separately, as in the real table (``+1`` and ``thumbsup`` are both valid).  Names not
listed here are treated like unknown custom emoji (404).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["EMOJI_NAME_RE", "SYSTEM_EMOJI", "is_system_emoji"]

#: ``model.Reaction.IsValid``: letters, digits, ``+``, ``-`` and ``_``; at most 64 characters.
EMOJI_NAME_RE: Final = re.compile(r"[a-zA-Z0-9+_-]{1,64}")

_NAMES: Final = """
+1 -1 thumbsup thumbsdown white_check_mark heavy_check_mark ballot_box_with_check x
negative_squared_cross_mark heavy_multiplication_x octagonal_sign no_entry no_entry_sign
warning stop_button repeat repeat_one arrows_counterclockwise arrows_clockwise recycle infinity
eyes hourglass hourglass_flowing_sand stopwatch timer_clock alarm_clock wastebasket
question grey_question exclamation grey_exclamation bangbang interrobang heavy_plus_sign
heavy_minus_sign heart orange_heart yellow_heart green_heart blue_heart purple_heart
broken_heart sparkling_heart fire star star2 sparkles zap boom collision tada confetti_ball
rocket bug wrench hammer hammer_and_wrench gear lock unlock key mag mag_right bulb memo pencil
pencil2 page_facing_up clipboard books book bookmark pushpin round_pushpin paperclip link
package inbox_tray outbox_tray email envelope bell no_bell speech_balloon thought_balloon
loudspeaker mega computer keyboard desktop_computer floppy_disk cd dvd
smile smiley grinning grin laughing satisfied joy rofl slightly_smiling_face
upside_down_face wink blush innocent heart_eyes kissing_heart thinking_face thinking
neutral_face expressionless unamused roll_eyes face_with_rolling_eyes grimacing relieved
pensive confused worried slightly_frowning_face frowning_face white_frowning_face open_mouth
astonished flushed pleading_face cry sob scream confounded persevere disappointed sweat
weary tired_face triumph rage angry sunglasses nerd_face nerd face_with_monocle sleeping
zzz mask sweat_smile shrug man_shrugging woman_shrugging facepalm man_facepalming
raised_hands clap pray handshake ok_hand wave raised_hand hand point_up point_down
point_left point_right muscle v crossed_fingers metal call_me_hand writing_hand
100 1234 abc new free up cool ok sos information_source
arrow_up arrow_down arrow_left arrow_right arrow_forward arrow_backward fast_forward rewind
arrow_up_small arrow_down_small leftwards_arrow_with_hook arrow_right_hook twisted_rightwards_arrows
red_circle large_blue_circle white_circle black_circle large_orange_diamond large_blue_diamond
small_orange_diamond small_blue_diamond green_circle yellow_circle orange_circle purple_circle
large_green_square large_yellow_square large_red_square checkered_flag triangular_flag_on_post
trophy medal sports_medal first_place_medal dart game_die robot_face robot ghost skull
alien space_invader see_no_evil hear_no_evil speak_no_evil coffee tea beer beers pizza
cake birthday cookie doughnut apple tomato hotdog taco burrito popcorn sun_with_face sunny
cloud umbrella snowflake rainbow ocean earth_africa globe_with_meridians moon crescent_moon
dog cat mouse rabbit fox_face bear panda_face penguin bird turtle snail bee honeybee ant
seedling evergreen_tree deciduous_tree cactus four_leaf_clover maple_leaf fallen_leaf
""".split()

#: Every system emoji name the emulator knows.
SYSTEM_EMOJI: Final[frozenset[str]] = frozenset(_NAMES)


def is_system_emoji(name: str) -> bool:
    """Return whether ``name`` is a system emoji short name (aliases included)."""
    return name in SYSTEM_EMOJI
