"""The cue words ``clauses`` reads sentence structure by: contrast, concession, inner state, display, pretence,
concealment. Data only; written by hand for microemo-jax from general English usage (no word list copied).

Words are lower-case tokens as ``extract`` makes them (hyphens split, apostrophes kept); phrases are tuples.
"""
from __future__ import annotations

CONTRAST = {'but', 'yet', 'however', 'nevertheless', 'nonetheless'}
CONCESSION = {'although', 'though', 'despite', 'notwithstanding', 'albeit'}   # and "in spite of"
CONCESSION_ENDS = {',', ';', ':'}
INNER = {'inside', 'inwardly', 'internally', 'underneath', 'beneath', 'secretly', 'privately', 'actually',
         'feel', 'feels', 'felt', 'feeling', 'betray', 'betrays', 'betrayed', 'betraying', 'belie', 'belies',
         'reveal', 'reveals', 'revealing'}
INNER_PHRASES = {('deep', 'down'), ('in', 'fact'), ('in', 'reality'), ('at', 'heart'), ('in', 'truth'),
                 ('gives', 'away'), ('give', 'away')}
DISPLAY = {'seems', 'seem', 'seemed', 'appears', 'appear', 'appeared', 'looks', 'look', 'looked', 'looking',
           'sounds', 'sound', 'sounded', 'stays', 'stay', 'stayed', 'staying', 'remains', 'remain', 'remained',
           'keeps', 'keep', 'kept', 'keeping', 'outwardly', 'smiles', 'smile', 'smiled', 'smiling'}
DISPLAY_PHRASES = {('on', 'the', 'surface'), ('on', 'the', 'outside'), ('to', 'the', 'outside')}
DISPLAY_NOUNS = {'exterior', 'facade', 'façade', 'veneer', 'front', 'mask', 'surface', 'smile', 'grin', 'face',
                 'expression', 'demeanor', 'demeanour', 'appearance', 'composure', 'manner', 'tone'}
PRETENSE = {'pretend', 'pretends', 'pretended', 'pretending', 'feign', 'feigns', 'feigned', 'feigning', 'fake',
            'fakes', 'faked', 'faking', 'forced', 'forces', 'force', 'forcing', 'sham'}
CONCEAL = {'hide', 'hides', 'hid', 'hidden', 'hiding', 'conceal', 'conceals', 'concealed', 'concealing', 'mask',
           'masks', 'masked', 'masking', 'suppress', 'suppresses', 'suppressed', 'suppressing', 'repress',
           'represses', 'repressed', 'repressing', 'disguise', 'disguises', 'disguised', 'disguising', 'stifle',
           'stifles', 'stifled', 'stifling', 'bottle', 'bottles', 'bottled', 'bottling', 'swallow', 'swallows',
           'swallowed', 'swallowing', 'bury', 'buries', 'buried', 'burying', 'restrain', 'restrains',
           'restrained', 'restraining'}
CONCEAL_PHRASES = {('hold', 'back'), ('holds', 'back'), ('held', 'back'), ('holding', 'back'),
                    ('cover', 'up'), ('covers', 'up'), ('covered', 'up'), ('covering', 'up')}
MASK_PREPOSITIONS = {'behind', 'with', 'under', 'beneath', 'underneath', 'by', 'through', 'as', 'into'}
BE = {'is', 'are', 'was', 'were', 'am', 'be', 'been', 'being'}
PASSIVE_FILLERS = BE | {'well', 'carefully', 'barely', 'partly', 'partially', 'clearly', 'all', 'but'}
SUBJECTS = {'he', 'she', 'they', 'i', 'we', 'you', 'it', 'his', 'her', 'their', 'my', 'our', 'your', 'its'}
BOTH = {'also', 'too', 'both'}
# Adverbs that mark the one word they stand by ("outwardly cheerful, inwardly exhausted"; "furious inside").
LOCAL_SHOWN = {'outwardly', 'seemingly', 'apparently', 'superficially'}
LOCAL_INNER = {'inwardly', 'internally', 'secretly', 'privately', 'inside', 'underneath', 'within'}
INTENSIFIERS = {'very', 'deeply', 'quite', 'so', 'extremely', 'really', 'rather', 'truly', 'genuinely'}
