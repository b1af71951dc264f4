"""Bundled emotion lexicon and synonym table, the data behind ``extract_labels`` and default OV scoring.

Source: written by hand for microemo-jax from general English usage, with the label forms MER's
open-vocabulary sets use (adjectives such as "happy", "worried", "surprised"). No third-party word list
was copied. Licence: Apache-2.0, the project's licence. It is Python rather than a .txt file so that it
ships in every install without package-data configuration.

``_LEXICON``: one label per line, ``label: other surface forms`` (inflections, derived nouns and adverbs,
multi-word phrases); every form maps to its label. Words that are mostly non-emotional in video
descriptions ("content", "moved", "warm", "cold", "down") are left out on purpose.

``_SYNONYMS``: one group per line, head first. OV scoring maps each label to its group's head, the
offline stand-in for MER2024's per-sample GPT grouping: groups hold words of one meaning at
roughly one intensity, not whole emotion families.
"""
from __future__ import annotations

_LEXICON = """
happy: happily, happier, happiest, happiness, in a good mood
joyful: joy, joyous, joyfully, joyously, joyfulness
cheerful: cheer, cheery, cheerfully, cheerfulness, in high spirits
delighted: delight, delightedly
pleased: pleasure
glad: gladly, gladness
excited: excitedly, excitement, exciting
amused: amusement, amusedly
satisfied: satisfaction
proud: proudly, pride
confident: confidently, confidence
relaxed: at ease
relieved: relief
calm: calmly, calmness
grateful: gratefully, gratitude
thankful: thankfulness
hopeful: hopefulness
optimistic: optimism, optimistically
enthusiastic: enthusiasm, enthusiastically
eager: eagerly, eagerness
expectant: expectantly, anticipation
affectionate: affection, affectionately
sympathetic: sympathy, sympathetically
curious: curiosity, curiously
surprised: surprise, surprising, taken aback
amazed: amazement
astonished: astonishment
shocked: shock, shocking
stunned
speechless: speechlessness
confused: confusion, confusing, confusedly, at a loss
puzzled: puzzlement
doubtful: doubt, doubts, doubtfully
suspicious: suspicion, suspiciously
skeptical: sceptical, skepticism, scepticism, skeptically, sceptically
hesitant: hesitantly, hesitation, hesitate, hesitates, hesitating
nervous: nervously, nervousness, on edge
anxious: anxiously, anxiety
worried: worry, worries, worrying, worriedly
tense: tension, tensely
stressed: stress, stressful, stressed out
uneasy: unease, uneasiness, uneasily, ill at ease
fearful: fear, fears, fearfully, fearfulness
scared: scary
afraid
frightened: fright, frightening
terrified: terror
panicked: panic, panicky, panicking, freaked out
sad: sadly, sadness, sadder, saddest
unhappy: unhappiness, unhappily, in a bad mood
sorrowful: sorrow, sorrowfully
disappointed: disappointment, disappointing
depressed: depression
heartbroken: heartbreak, heart broken, broken hearted, brokenhearted, devastated, devastation
grieving: grief, grieve, grieves
hurt
lonely: loneliness
helpless: helplessness, helplessly
hopeless: hopelessness, hopelessly
desperate: desperation, desperately
regretful: regret, regrets, regretting, regretfully
guilty: guilt, guiltily
ashamed: shame
embarrassed: embarrassment, embarrassing
awkward: awkwardness, awkwardly
shy: shyly, shyness
upset
distressed: distress
aggrieved: grievance, grievances
wronged
angry: angrily, angrier, angriest, anger, angered
furious: furiously, fury, rage, raging, enraged, livid, seething
irritated: irritation, irritable, irritably
annoyed: annoyance, annoying
frustrated: frustration, frustrating, fed up
impatient: impatience, impatiently
dissatisfied: dissatisfaction
resentful: resentment, resent, resents
indignant: indignation, indignantly
disgusted: disgust, disgusting
contemptuous: contempt, contemptuously
disdainful: disdain, disdainfully
jealous: jealousy, jealously
envious: envy, enviously
bored: boredom
tired: tiredness, weary, weariness
exhausted: exhaustion
indifferent: indifference, indifferently
serious: seriousness
determined: determination
stubborn: stubbornly, stubbornness
defiant: defiance, defiantly
resigned: resignation
reluctant: reluctance, reluctantly
agitated: agitation, worked up
restless: restlessness
sarcastic: sarcasm, sarcastically
mocking: mockery, mockingly
playful: playfully, playfulness
arrogant: arrogance, arrogantly
smug: smugly
cautious: caution, cautiously
vigilant: vigilance
alert
concerned: concern
overwhelmed
flustered
insecure: insecurity
nostalgic: nostalgia
bitter: bitterly, bitterness
hostile: hostility
aggressive: aggression, aggressively
neutral
"""

_SYNONYMS = """
happy, joyful, glad, cheerful, delighted, pleased, joyous
excited, thrilled, elated
enthusiastic, eager, passionate
satisfied, content, contented, fulfilled
calm, relaxed, peaceful, serene, composed, tranquil
relieved
proud
confident, assured, self-assured
grateful, thankful, appreciative
hopeful, optimistic
expectant, anticipating
amused, entertained
surprised, amazed, astonished, astounded, stunned
shocked
confused, puzzled, perplexed, bewildered, baffled
doubtful, skeptical, sceptical, dubious, disbelieving
suspicious, distrustful, mistrustful
curious, inquisitive, interested
hesitant, unsure, uncertain, indecisive
nervous, anxious, uneasy, apprehensive, jittery
worried, concerned, troubled
tense, stressed, strained
fearful, afraid, scared, frightened, terrified
panicked, panicky, panic-stricken
sad, unhappy, sorrowful, melancholy, gloomy, downcast, dejected
depressed, despondent
heartbroken, grieving, grief-stricken
disappointed, disheartened, let down
helpless, powerless
hopeless, desperate, despairing
lonely, isolated
hurt, wounded
regretful, remorseful, sorry, apologetic
guilty
ashamed, humiliated
embarrassed, sheepish
awkward, uncomfortable
shy, timid, bashful
upset, distressed
angry, furious, mad, enraged, irate, livid
irritated, annoyed, irritable, vexed
frustrated, exasperated
impatient
dissatisfied, discontented, displeased, unsatisfied
resentful, bitter
aggrieved, wronged
indignant, outraged
disgusted, revolted, repulsed
contemptuous, disdainful, scornful
jealous, envious
bored, uninterested
tired, weary, exhausted, fatigued
indifferent, apathetic, detached, unconcerned
serious, solemn, grave
determined, resolute, firm, decisive
stubborn, obstinate
defiant, rebellious
resigned
reluctant, unwilling
agitated, restless
sarcastic, mocking, ironic, sardonic
playful, teasing, mischievous
arrogant, conceited, haughty
smug, complacent
cautious, wary, careful
vigilant, alert
sympathetic, compassionate, caring, empathetic
affectionate, loving, tender, fond
hostile, antagonistic
aggressive
insecure
nostalgic
overwhelmed
flustered
speechless
neutral
"""


def _lines(text: str):
    return [line.strip() for line in text.strip().splitlines() if line.strip()]


def _lexicon() -> dict[str, tuple[str, ...]]:
    out = {}
    for line in _lines(_LEXICON):
        label, _, forms = line.partition(':')
        out[label.strip()] = tuple(f.strip() for f in forms.split(',') if f.strip())
    return out


LEXICON: dict[str, tuple[str, ...]] = _lexicon()
"""label -> its other surface forms (the label itself is a form too)."""

SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = tuple(
    tuple(w.strip() for w in line.split(',')) for line in _lines(_SYNONYMS))
"""Synonym groups, head first."""
