"""Build docpress's small sample corpus: six short, original PDFs on distinct topics.

    python corpora/make_sample.py [OUT_DIR]        # default: corpora/sample

All text below was written for this project. The output is deterministic: fixed
metadata dates, no random ids, and one image-only page (Appendix A of the council
minutes) rendered with Pillow, so it has no text layer and must be read by OCR.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pymupdf

FIXED_DATE = "D:20250101000000Z"
AUTHOR = "docpress sample corpus"
CREATOR = "docpress corpora/make_sample.py"

PAGE_W, PAGE_H = 612, 792  # US Letter, points
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 66, 64, 64
TEXT_W = PAGE_W - 2 * MARGIN_X

BODY, BOLD = "helv", "hebo"  # built-in Helvetica and Helvetica-Bold
STYLES = {  # name: (font, size, leading, space before, space after, grey)
    "title": (BOLD, 20, 24, 0, 4, 0.0),
    "subtitle": (BODY, 12, 16, 0, 12, 0.3),
    "h1": (BOLD, 14, 18, 8, 5, 0.0),
    "h2": (BOLD, 11, 14, 5, 3, 0.0),
    "p": (BODY, 10.5, 14, 0, 6, 0.0),
    "small": (BODY, 9, 12, 0, 5, 0.3),
}

# ---------------------------------------------------------------------------
# Content. A document is a dict; each page is a list of blocks:
#   (style, text) for style in STYLES; ("step", label, text) for a numbered step;
#   ("table", widths, aligns, rows) where rows[0] is the header row.
# A page given as ("image", blocks) is rendered to a picture (no text layer).
# ---------------------------------------------------------------------------

NORTHWIND = {
    "file": "northwind_2024_annual_report.pdf",
    "title": "Northwind Tools, Inc. 2024 Annual Report",
    "subject": "Annual report of a fictional hand- and power-tool maker",
    "footer": "Northwind Tools, Inc.  |  2024 Annual Report",
    "pages": [
        [
            ("title", "Northwind Tools, Inc."),
            ("subtitle", "2024 Annual Report"),
            ("h1", "Letter to Shareholders"),
            ("p", "Dear fellow shareholders,"),
            ("p", "2024 was the year our long investment in manufacturing capacity began to pay back. "
                  "Net sales reached $1.28 billion, up 7.3 percent from the prior year, and diluted earnings "
                  "per share rose to $2.97 from $2.28. Growth came from every segment, but the strongest demand "
                  "was for cordless fastening tools sold to commercial builders, where our new brushless driver "
                  "line took share from larger competitors."),
            ("p", "In June we opened our forging and heat-treatment plant in Dayton, Ohio. The plant brings the "
                  "production of wrench and socket blanks back in house after two decades of buying them from "
                  "outside suppliers. It ran below capacity for its first months, as every new plant does, but by "
                  "December it was shipping more than forty thousand forged parts a week and scrap rates had "
                  "fallen under two percent."),
            ("p", "We also made hard choices. We closed our small warehouse in Reno and consolidated western "
                  "distribution into our Sacramento center, a move that cost us some goodwill with long-standing "
                  "local customers. We believe it was right: delivery times in the region are now a day shorter "
                  "on average."),
            ("p", "The board raised the quarterly dividend twice during the year, and we returned further cash to "
                  "owners through a modest share repurchase. We remain committed to a balance sheet that lets us "
                  "keep investing through a downturn rather than retreat from it."),
            ("p", "Thank you to our 3,900 employees, to our distributors, and to you, our owners, for your "
                  "confidence."),
            ("p", "Margaret Ellison-Reyes\nChief Executive Officer\nMarch 3, 2025"),
        ],
        [
            ("h1", "Consolidated Statements of Income"),
            ("small", "For the years ended December 31. In millions of U.S. dollars, except per-share amounts."),
            ("table", [300, 84, 84], "lrr", [
                ["", "2024", "2023"],
                ["Net sales", "1,284.6", "1,197.3"],
                ["Cost of sales", "(812.9)", "(779.4)"],
                ["Gross profit", "471.7", "417.9"],
                ["Selling, general and administrative expenses", "(248.3)", "(231.6)"],
                ["Research and development", "(52.1)", "(47.8)"],
                ["Operating income", "171.3", "138.5"],
                ["Interest expense, net", "(14.2)", "(16.9)"],
                ["Income before income taxes", "157.1", "121.6"],
                ["Provision for income taxes", "(34.6)", "(26.8)"],
                ["Net income", "122.5", "94.8"],
                ["Diluted weighted-average shares (millions)", "41.2", "41.6"],
                ["Diluted earnings per share", "$2.97", "$2.28"],
            ]),
            ("h2", "Management's discussion of results"),
            ("p", "Net sales increased $87.3 million, or 7.3 percent, driven by higher unit volumes in the Power "
                  "Tools segment and price increases of roughly 2 percent across hand tools. Gross margin improved "
                  "to 36.7 percent from 34.9 percent as the Dayton plant lowered the cost of purchased forgings and "
                  "freight costs eased from their 2023 peak."),
            ("p", "Selling, general and administrative expenses rose 7.2 percent, mainly because of higher sales "
                  "commissions and the Reno consolidation, which included $4.1 million of lease termination and "
                  "severance charges. Research and development spending grew to 4.1 percent of sales, reflecting "
                  "work on the next generation of battery packs."),
            ("p", "Operating income rose 23.7 percent to $171.3 million, and operating margin widened to 13.3 "
                  "percent. Net interest expense fell as we repaid part of our term loan. The effective tax rate "
                  "was 22.0 percent in both years."),
        ],
        [
            ("h1", "Consolidated Statements of Cash Flows"),
            ("small", "For the years ended December 31. In millions of U.S. dollars."),
            ("table", [300, 84, 84], "lrr", [
                ["", "2024", "2023"],
                ["Net income", "122.5", "94.8"],
                ["Depreciation and amortization", "58.4", "54.1"],
                ["Changes in working capital", "(18.7)", "(9.3)"],
                ["Net cash provided by operating activities", "162.2", "139.6"],
                ["Purchases of property, plant and equipment", "(96.3)", "(71.8)"],
                ["Proceeds from sale of equipment", "3.1", "1.4"],
                ["Net cash used in investing activities", "(93.2)", "(70.4)"],
                ["Repayment of long-term debt", "(25.0)", "(30.0)"],
                ["Dividends paid", "(33.0)", "(29.9)"],
                ["Repurchases of common stock", "(15.0)", "-"],
                ["Net cash used in financing activities", "(73.0)", "(59.9)"],
                ["Net increase (decrease) in cash", "(4.0)", "9.3"],
                ["Cash at beginning of year", "118.6", "109.3"],
                ["Cash at end of year", "114.6", "118.6"],
            ]),
            ("h2", "Liquidity and capital resources"),
            ("p", "Cash generated by operations rose to $162.2 million. The increase in working capital reflects "
                  "inventory built ahead of the spring selling season and higher receivables from large retail "
                  "accounts."),
            ("p", "Investing activities were dominated by the completion of the Dayton plant, which accounted for "
                  "about $58 million of the year's spending on property, plant and equipment; the remainder went to "
                  "tooling for new products and routine replacement of machinery. We expect this spending to return "
                  "to a range of $60 million to $70 million in 2025."),
            ("p", "In financing activities we paid dividends of $0.80 per share, up from $0.72, repaid $25.0 "
                  "million of our term loan, and repurchased 210,000 shares for $15.0 million. We ended the year "
                  "with $114.6 million of cash and an undrawn $200 million revolving credit facility."),
        ],
        [
            ("h1", "Risk Factors"),
            ("p", "The following risks could materially affect our business, financial condition or results of "
                  "operations. They are not the only risks we face."),
            ("h2", "Raw material and component costs"),
            ("p", "Most of our hand tools are made from alloy steel bar, and our cordless products depend on "
                  "lithium-ion cells bought from a small number of Asian suppliers. A sharp rise in steel prices or "
                  "a shortage of battery cells could raise our costs faster than we can raise our own prices, "
                  "compressing margins. We do not hedge our steel purchases."),
            ("h2", "Customer concentration"),
            ("p", "Our three largest home-improvement retail customers together accounted for 38 percent of 2024 "
                  "net sales. The loss of any one of them, or a decision by them to favor their own private-label "
                  "brands, would reduce our revenue significantly."),
            ("h2", "Dependence on the Dayton plant"),
            ("p", "The new plant concentrates most of our forging in a single location. A fire, a prolonged "
                  "equipment failure or a labor dispute there would interrupt the supply of core hand-tool products "
                  "until outside sources could be qualified again, which could take several months."),
            ("h2", "Product liability and recalls"),
            ("p", "Power tools can injure users when they fail. A defect in a widely sold product could lead to a "
                  "recall, to lawsuits, and to lasting damage to our brand."),
            ("h2", "Information systems"),
            ("p", "We rely on a single enterprise resource planning system for ordering, production scheduling and "
                  "invoicing. A ransomware attack or an extended outage could halt our shipments."),
            ("h2", "Trade policy"),
            ("p", "New tariffs on imported components, or retaliation against products we export, could change the "
                  "economics of our supply chain quickly and without much warning."),
        ],
    ],
}

BIRDS = {
    "file": "bird_migration_field_guide.pdf",
    "title": "Birds on the Move: A Field Guide to Migration (Chapter 4 excerpt)",
    "subject": "Field guide excerpt on the timing, navigation and stopovers of migrating birds",
    "footer": "Birds on the Move  |  Chapter 4: How, When and Where Birds Travel",
    "pages": [
        [
            ("title", "Birds on the Move"),
            ("subtitle", "A Field Guide to Migration. Chapter 4: How, When and Where Birds Travel"),
            ("h1", "When to Leave: The Timing of Migration"),
            ("p", "Every spring and autumn, billions of birds leave one home for another, and most of them set off "
                  "within a window of only a few weeks. The precision is striking. A pied flycatcher ringed in a "
                  "Dutch woodland may return to the same nest box within days of the date it arrived the year "
                  "before, after a round trip to West Africa."),
            ("p", "The main cue is day length. As days lengthen in late winter, the change in light acts on the "
                  "bird's brain and hormone glands, which set off the build-up of body fat and the growth of flight "
                  "muscle. Birds kept in cages follow the same seasonal rhythm even though they cannot leave. At "
                  "night they hop and flutter restlessly, facing the direction they would fly if they were free. "
                  "Ornithologists call this behaviour Zugunruhe, a German word for migratory restlessness, and its "
                  "timing in captive birds closely matches the departure dates of wild ones."),
            ("p", "An internal annual clock sets the broad schedule, and weather fine-tunes it. Birds wait for tail "
                  "winds and clearing skies; a long spell of northerly wind in April can hold thousands of warblers "
                  "on the Gulf coast until the wind turns, and then release them all in a single night."),
            ("p", "Young birds on their first journey usually travel later in autumn than adults and take more time "
                  "over it. Long-distance migrants, which have the farthest to go, keep to a stricter timetable than "
                  "short-distance migrants, whose departure can shift by weeks in a mild year."),
            ("h2", "Typical calendar in central Europe"),
            ("table", [180, 144, 144], "lll", [
                ["Species", "Spring arrival", "Autumn departure"],
                ["Chiffchaff", "mid-March", "October"],
                ["Barn swallow", "early April", "September"],
                ["Common swift", "early May", "early August"],
            ]),
        ],
        [
            ("h1", "Finding the Way: Compasses and Maps"),
            ("p", "How a bird only a few months old can fly thousands of kilometres to a wintering area it has "
                  "never seen remains one of the great puzzles of biology. Experiments over the past sixty years "
                  "show that birds carry several compasses and switch between them."),
            ("h2", "The magnetic compass"),
            ("p", "Many songbirds sense the earth's magnetic field. Unlike a hiker's compass, which points north, "
                  "the avian compass reads the angle at which the field lines dip toward the ground. Near the poles "
                  "the lines plunge steeply; at the magnetic equator they run level. A bird can therefore tell "
                  "'poleward' from 'equatorward' without knowing which way is north. The sense appears to depend on "
                  "light-sensitive proteins called cryptochromes in the retina, so the bird may literally see the "
                  "field as a faint pattern laid over its view. Weak radio-frequency noise, of the kind given off "
                  "by electrical equipment, can disrupt the compass of birds in the laboratory."),
            ("h2", "Sun and star compasses"),
            ("p", "By day, birds use the position of the sun, correcting for its movement across the sky with "
                  "their internal clock. Night migrants learn the rotation of the sky as nestlings and take the "
                  "point around which the stars turn as their reference for north. The patterns of polarised light "
                  "at sunset are used to calibrate the other compasses before departure."),
            ("h2", "Maps"),
            ("p", "A compass gives direction, not position. Experienced adults, when displaced by hundreds of "
                  "kilometres, correct their course toward the goal, while first-year birds simply keep flying in "
                  "their inherited direction. Adults seem to have learned a map, possibly built from smells, "
                  "magnetic intensity and landmarks such as coastlines and mountain ranges."),
        ],
        [
            ("h1", "Stopping Over: Refuelling on the Journey"),
            ("p", "Few birds make their whole journey in one flight. Most alternate bursts of travel with stays at "
                  "stopover sites, where they rest and rebuild the fat that powers their flight. A warbler crossing "
                  "a continent may spend twice as long feeding at stopovers as it spends in the air."),
            ("p", "Good stopover sites are rich in food and relatively safe from predators. Estuaries, tidal "
                  "mudflats, river floodplains and coastal scrub are among the most important. On the shores of "
                  "Delaware Bay in late May, red knots gorge on the eggs of spawning horseshoe crabs and can "
                  "increase their body mass by more than half in under two weeks before flying on to the Arctic."),
            ("p", "Birds prepare for the longest legs by reshaping their bodies. Before crossing open sea or "
                  "desert, some species shrink their digestive organs, which are of no use in flight, and enlarge "
                  "their heart and flight muscles. The bar-tailed godwit, which flies non-stop from Alaska to New "
                  "Zealand, may carry fat equal to more than half of its departure weight."),
            ("p", "Because so many individuals depend on a handful of sites, the loss of a single wetland can "
                  "affect a population breeding far away. When you watch at a stopover, look for birds feeding "
                  "frantically at all hours, flocks that change in make-up from day to day, and birds that arrive "
                  "thin and leave plump."),
            ("h2", "Notable stopover sites"),
            ("table", [120, 120, 148, 80], "llll", [
                ["Site", "Region", "Main visitors", "Peak season"],
                ["Delaware Bay", "eastern USA", "red knot, ruddy turnstone", "May"],
                ["Yellow Sea mudflats", "China and Korea", "bar-tailed godwit, great knot", "April to May"],
                ["Wadden Sea", "Netherlands, Germany, Denmark", "knots, dunlin, brent goose", "spring and autumn"],
                ["Hula Valley", "northern Israel", "common crane, white stork", "autumn"],
            ]),
        ],
    ],
}

ESPRESSO = {
    "file": "corvina_e2_espresso_manual.pdf",
    "title": "Corvina E2 Espresso Machine User Manual",
    "subject": "User manual for a fictional home espresso machine: setup, descaling, troubleshooting",
    "footer": "Corvina E2 Espresso Machine  |  User Manual, model CE-200",
    "pages": [
        [
            ("title", "Corvina E2 Espresso Machine"),
            ("subtitle", "User Manual, model CE-200"),
            ("h1", "Setting Up Your Machine"),
            ("step", "1.", "Unpack the machine and remove all tape and the protective film from the drip tray "
                           "cover. Keep the packaging in case the machine has to be returned for service."),
            ("step", "2.", "Place the machine on a level, dry surface at least 10 cm from the wall, away from "
                           "sinks and heat sources."),
            ("step", "3.", "Lift the water tank out from the back, rinse it, and fill it with fresh cold water to "
                           "the MAX line. If your tap water is hard, use filtered water: it reduces scale and "
                           "improves the taste."),
            ("step", "4.", "Slide the tank back until it clicks into place, then plug the machine into a "
                           "grounded outlet."),
            ("step", "5.", "Press the power button. The three lights on the control panel flash while the boiler "
                           "heats, which takes about 90 seconds. When they stay on, the machine is ready."),
            ("h1", "First Use: Flushing the System"),
            ("p", "Before brewing your first coffee, run water through the machine to wash out dust and "
                  "manufacturing residue. Place a large container under the group head and another under the "
                  "steam wand. Press the one-cup button and let the water run until it stops; repeat three times. "
                  "Then open the steam knob for 20 seconds. Empty the containers and discard the water."),
            ("h1", "Making an Espresso"),
            ("p", "Fill the single or double filter basket with finely ground coffee (about 9 g or 18 g), tamp it "
                  "firmly and evenly, and lock the portafilter into the group head by turning it to the right. "
                  "Press the one-cup or two-cup button. A well-prepared double shot takes 25 to 30 seconds and "
                  "yields roughly 36 ml."),
            ("h2", "Safety"),
            ("p", "Never open the steam knob while the drip tray is removed. The group head and steam wand become "
                  "very hot during use. Unplug the machine before cleaning it and never immerse the base in water."),
        ],
        [
            ("h1", "Descaling"),
            ("p", "Minerals dissolved in water slowly build up inside the boiler and pipes as scale. Scale slows the "
                  "flow of water, lowers the brewing temperature and can eventually damage the pump. The DESCALE "
                  "light turns orange after about 200 shots since the last cleaning; in hard-water areas, descale "
                  "every month whether or not the light is on."),
            ("p", "You will need one sachet of Corvina descaling solution or 30 g of food-grade citric acid, a "
                  "container that holds at least 1.5 litres, and about 40 minutes. Do not use vinegar: its acetic "
                  "acid attacks the rubber seals."),
            ("step", "1.", "Remove and clean the portafilter. Empty the drip tray and the water tank."),
            ("step", "2.", "Dissolve the descaler in 1 litre of warm water and pour it into the tank."),
            ("step", "3.", "Place the container under both the group head and the steam wand."),
            ("step", "4.", "Hold the one-cup and two-cup buttons together for 5 seconds. The DESCALE light blinks "
                           "to show that the cycle has started."),
            ("step", "5.", "The machine pumps the solution in bursts, first through the group head and then "
                           "through the steam wand, pausing between bursts to let it work. This takes about 20 "
                           "minutes. Do not switch the machine off."),
            ("step", "6.", "When the light stops blinking, empty the container, rinse the tank and fill it to the "
                           "MAX line with clean water."),
            ("step", "7.", "Press the one-cup button to start the rinse cycle, which flushes the whole tank "
                           "through the machine. The DESCALE light goes out when rinsing is complete."),
            ("p", "If the cycle is interrupted by a power cut, start again from step 6 so that no solution is left "
                  "inside the machine."),
            ("h1", "Daily and Weekly Care"),
            ("p", "Wipe the steam wand with a damp cloth straight after each use and purge it for two seconds to "
                  "clear milk from the tip. Rinse the filter baskets every day. Once a week, unscrew the shower "
                  "screen with a coin and brush away old coffee grounds."),
        ],
        [
            ("h1", "Troubleshooting"),
            ("p", "Most problems can be solved at home. If a problem is not listed, or persists after the suggested "
                  "remedy, call Corvina customer service at the number on the back cover. Do not open the housing; "
                  "there are no user-serviceable parts inside."),
            ("table", [132, 150, 186], "lll", [
                ["Problem", "Possible cause", "What to do"],
                ["Coffee runs very slowly or only drips",
                 "Grind too fine; coffee tamped too hard; machine needs descaling",
                 "Use a slightly coarser grind, tamp with less force, and descale if the orange light is on."],
                ["Coffee runs too fast and tastes sour or watery",
                 "Grind too coarse; too little coffee in the basket",
                 "Grind finer and fill the basket to just below the rim before tamping."],
                ["Espresso tastes bitter or burnt",
                 "Shot ran too long; beans roasted very dark",
                 "Stop the shot at about 30 seconds, or try a medium roast."],
                ["No crema on top of the espresso",
                 "Stale beans; grind too coarse",
                 "Use beans roasted within the last four weeks and grind them just before brewing."],
                ["Water leaks around the portafilter",
                 "Portafilter not fully locked; grounds on the gasket; worn gasket",
                 "Turn the handle fully to the right, wipe the rim of the group head, and replace the gasket if "
                 "it is cracked."],
                ["Steam wand sputters or gives no steam",
                 "Tip blocked by dried milk",
                 "Soak the tip in hot water and clear its holes with the pin supplied."],
                ["Lights keep flashing and the machine does not heat",
                 "Water tank empty or not seated",
                 "Fill the tank and push it firmly into place."],
            ]),
            ("h2", "Warranty"),
            ("p", "The Corvina E2 is covered by a two-year limited warranty against defects in materials and "
                  "workmanship. Damage caused by scale is not covered, so please descale as directed."),
        ],
    ],
}

LFP = {
    "file": "lfp_battery_degradation_study.pdf",
    "title": "Capacity fade and resistance growth in LiFePO4/graphite cells cycled at 25, 35 and 45 C",
    "subject": "Research paper (fictional) on temperature-dependent ageing of lithium iron phosphate cells",
    "footer": "Okonkwo, Haverkamp and Mistry  |  Ageing of LiFePO4/graphite cells",
    "pages": [
        [
            ("title", "Capacity Fade and Resistance Growth in LiFePO4/Graphite Cells Cycled at Moderate "
                      "and Elevated Temperature"),
            ("subtitle", "R. Okonkwo, L. Haverkamp and S. Mistry\n"
                         "Laboratory for Electrochemical Storage, Eastmoor Institute of Technology"),
            ("h2", "Abstract"),
            ("p", "Lithium iron phosphate (LFP) cells are prized for long life and thermal stability, yet their "
                  "ageing under warm operating conditions remains poorly quantified for commercial cells. We cycled "
                  "24 commercial 26650-format LFP/graphite cells of 2.5 Ah nominal capacity at 25, 35 and 45 °C, "
                  "interrupting the tests every 250 cycles for reference performance checks. After 2000 cycles, "
                  "cells kept at 25 °C retained 94.1% of their initial capacity, whereas cells at 45 °C retained "
                  "86.7% and showed a 31% increase in DC internal resistance. Differential voltage analysis "
                  "attributes most of the fade to loss of lithium inventory through growth of the solid "
                  "electrolyte interphase (SEI) on the graphite anode, rather than to damage of the phosphate "
                  "cathode. Capacity loss followed a square-root dependence on cycle number at all three "
                  "temperatures, with an apparent activation energy of 31 kJ/mol. The results support simple "
                  "thermal-management rules for stationary storage systems built from LFP cells."),
            ("h1", "1. Introduction"),
            ("p", "LFP has become the dominant cathode chemistry for stationary storage and for a growing share of "
                  "electric vehicles, owing to its low cost, its freedom from cobalt and nickel, and its resistance "
                  "to thermal runaway. Its flat voltage curve, however, makes state-of-health estimation difficult, "
                  "and field systems in hot climates often run their cells well above room temperature. Earlier "
                  "studies have reported widely different ageing rates, partly because test conditions and cell "
                  "designs vary. Here we report a controlled study of a single commercial cell type at three "
                  "temperatures, with the aim of separating the mechanisms of degradation and providing parameters "
                  "for lifetime models."),
        ],
        [
            ("h1", "2. Experimental Methods"),
            ("h2", "2.1 Cells"),
            ("p", "All cells came from a single production lot. On receipt, each cell was weighed, its open-circuit "
                  "voltage recorded, and its capacity measured over three full cycles at C/5. Cells whose capacity "
                  "differed from the lot mean by more than 1% were excluded, leaving 24 cells with an average "
                  "initial capacity of 2.54 Ah."),
            ("h2", "2.2 Cycling protocol"),
            ("p", "Eight cells were assigned to each temperature (25, 35 and 45 °C) and placed in climate chambers "
                  "held within 0.5 °C of the set point. Cells were cycled at a constant current of 1C between "
                  "2.5 V and 3.65 V, with a constant-voltage hold at 3.65 V until the current fell to C/20. A "
                  "10-minute rest followed each charge and each discharge. Cell surface temperature was monitored "
                  "with a thermocouple fixed at mid-height under insulating tape; it rose by no more than 2 °C "
                  "above chamber temperature during cycling."),
            ("h2", "2.3 Reference performance tests"),
            ("p", "Every 250 cycles, all cells were returned to 25 °C and tested with (i) a C/5 capacity "
                  "measurement, (ii) a C/20 quasi-open-circuit voltage curve for differential voltage analysis, "
                  "and (iii) 10-second 2C discharge pulses at 50% state of charge to obtain the DC internal "
                  "resistance. Electrochemical impedance spectra were recorded from 10 kHz to 10 mHz."),
            ("h2", "2.4 Post-mortem analysis"),
            ("p", "At the end of testing, two cells from each group were opened in an argon-filled glove box. "
                  "Electrode samples were rinsed in dimethyl carbonate and examined by scanning electron "
                  "microscopy and X-ray diffraction, and coin half cells were built against lithium metal to "
                  "measure the remaining capacity of each electrode separately."),
        ],
        [
            ("h1", "3. Results and Discussion"),
            ("small", "Table 1. State of health after 2000 cycles (mean of eight cells per group)."),
            ("table", [126, 114, 114, 114], "lrrr", [
                ["Temperature", "Capacity retained", "Resistance increase", "Range of retention"],
                ["25 °C", "94.1%", "+12%", "93.6 to 94.5%"],
                ["35 °C", "91.3%", "+19%", "90.4 to 92.0%"],
                ["45 °C", "86.7%", "+31%", "85.1 to 87.9%"],
            ]),
            ("p", "Capacity fell steadily in every group, with no knee point or sudden acceleration within 2000 "
                  "cycles. Plotted against the square root of cycle number, the loss was close to linear "
                  "(R squared above 0.98), the signature of a process limited by diffusion through a growing "
                  "surface film. Fade at 45 °C was 2.3 times faster than at 25 °C."),
            ("p", "Differential voltage curves showed the graphite peaks shifting relative to the cathode features "
                  "while their shapes were preserved. This pattern indicates loss of cyclable lithium, consumed by "
                  "side reactions at the anode surface, rather than loss of active material. Half-cell tests on "
                  "harvested electrodes confirmed it: LFP cathodes from the 45 °C cells still delivered 98% of the "
                  "capacity of fresh material, and X-ray diffraction showed no change in the olivine structure."),
            ("p", "Microscopy revealed a thicker, cracked SEI on anodes aged at 45 °C, and impedance spectra showed "
                  "growth of the mid-frequency semicircle associated with the anode surface film, which accounts "
                  "for most of the rise in resistance."),
            ("h1", "4. Conclusions"),
            ("p", "Within 2000 cycles, temperature rather than cycle count is the main lever on the life of LFP "
                  "cells: keeping them at 25 to 30 °C instead of 45 °C roughly halves their capacity loss. Because "
                  "the fade is driven by the anode, electrolyte additives that stabilise the SEI may bring larger "
                  "gains than further improvements to the cathode."),
        ],
    ],
}

COUNCIL = {
    "file": "alder_creek_council_minutes_2024-11-12.pdf",
    "title": "City of Alder Creek City Council: Minutes of the Regular Meeting, November 12, 2024",
    "subject": "Minutes of a fictional city council meeting: budget vote, bike lanes, library hours",
    "footer": "City of Alder Creek  |  Council minutes, November 12, 2024",
    "pages": [
        [
            ("title", "City of Alder Creek City Council"),
            ("subtitle", "Minutes of the Regular Meeting, Tuesday, November 12, 2024"),
            ("p", "Call to order. Mayor Denise Harlow called the meeting to order at 7:02 p.m. in the Council "
                  "Chambers of City Hall, 210 Main Street."),
            ("p", "Present: Mayor Harlow; Councillors Adebayo, Brennan, Castillo, Nakamura and Voss. Absent: "
                  "Councillor Lindqvist (excused). Staff: City Manager Tom Whitcomb, Finance Director Priya Raman, "
                  "City Clerk Joan Mercer."),
            ("p", "Approval of minutes. The minutes of the October 22 meeting were approved as circulated on a "
                  "motion by Councillor Voss, seconded by Councillor Castillo. Carried unanimously."),
            ("p", "Public comment. Four residents spoke. Two urged the council to keep the library open later in "
                  "the evening; one asked about leaf collection dates; one raised concerns about speeding on "
                  "Orchard Road. The Mayor thanked the speakers and referred the speeding complaint to the Police "
                  "Chief."),
            ("h1", "Item 1: Fiscal Year 2025 Operating Budget (Ordinance 24-31)"),
            ("p", "Finance Director Raman presented the proposed operating budget of $48.6 million, an increase of "
                  "3.9 percent over the current year. The increase is driven mainly by the new contract with the "
                  "firefighters' union and by higher health insurance premiums. The property tax rate would stay "
                  "at $6.42 per $1,000 of assessed value, with growth in the tax base covering the difference."),
            ("p", "Councillor Brennan moved an amendment to shift $120,000 from the contingency reserve to road "
                  "resurfacing. The amendment failed 2-3, with Councillors Brennan and Voss in favour."),
            ("p", "Councillor Nakamura moved adoption of the budget as presented, seconded by Councillor Adebayo. "
                  "Roll call vote:"),
            ("table", [200, 120], "ll", [
                ["Member", "Vote"],
                ["Councillor Adebayo", "Yes"],
                ["Councillor Brennan", "No"],
                ["Councillor Castillo", "Yes"],
                ["Councillor Nakamura", "Yes"],
                ["Councillor Voss", "Yes"],
                ["Councillor Lindqvist", "Absent"],
            ]),
            ("p", "The motion carried 4-1 and Ordinance 24-31 was adopted."),
        ],
        [
            ("h1", "Item 2: Harbor Avenue Protected Bike Lanes"),
            ("p", "Public Works Director Samir Haddad presented the final design for protected bike lanes on Harbor "
                  "Avenue between 3rd Street and Waterfront Park, a distance of 1.4 miles. The design separates "
                  "cyclists from traffic with concrete curbs and flexible posts and removes 46 of the 212 "
                  "on-street parking spaces along the corridor. The estimated cost is $2.3 million, of which $1.8 "
                  "million is covered by a state active-transportation grant."),
            ("p", "Several business owners had written to oppose the loss of parking. Staff proposed turning the "
                  "gravel lot at Harbor and 5th into 30 public spaces to offset it. Councillor Voss asked whether "
                  "delivery trucks would still be able to stop; Director Haddad said loading zones would be kept "
                  "on every block."),
            ("p", "Motion to approve the design and authorise staff to seek construction bids, by Councillor "
                  "Castillo, seconded by Councillor Adebayo. Carried 4-1, Councillor Brennan opposed. Construction "
                  "is expected to begin in April 2025."),
            ("h1", "Item 3: Public Library Hours"),
            ("p", "Library Director Ana Kowalczyk reported that evening visits have grown by a fifth since the main "
                  "library reopened after its renovation. She proposed extending weekday closing time from 6 p.m. "
                  "to 8 p.m. Monday through Thursday, and opening on Sundays from 1 p.m. to 5 p.m., starting "
                  "January 5, 2025. The change requires 1.5 additional staff positions at a cost of $96,000 a year, "
                  "already provided for in the adopted budget."),
            ("p", "Council approved the new hours unanimously on a motion by Councillor Nakamura, seconded by "
                  "Councillor Castillo."),
            ("h1", "Adjournment"),
            ("p", "There being no further business, the meeting was adjourned at 9:18 p.m. The memorandum "
                  "reproduced as Appendix A was received by the Clerk after the meeting and is attached for the "
                  "record."),
            ("p", "Respectfully submitted,\nJoan Mercer, City Clerk"),
        ],
        ("image", [  # Appendix A: a signed memo, scanned (no text layer)
            ("h", "APPENDIX A"),
            ("small", "CITY OF ALDER CREEK  -  OFFICE OF THE CITY MANAGER"),
            ("title", "MEMORANDUM"),
            ("p", "To: Mayor and City Council\nFrom: Tom Whitcomb, City Manager\nDate: November 14, 2024\n"
                  "Re: Emergency repair of the Elm Street water main"),
            ("rule", ""),
            ("p", "On the morning of November 13, a 12-inch cast-iron water main broke beneath Elm Street between "
                  "Pine and Cedar Avenues. It flooded two basements and cut off water to about 140 homes for nine "
                  "hours. Crews installed a temporary bypass the same day."),
            ("p", "Under the emergency purchasing rules, I have approved a contract with Ridgeline Utility "
                  "Contractors to replace 600 feet of the main. The cost is $184,500, to be paid from the water "
                  "utility reserve fund. Elm Street will be closed to through traffic between Pine and Cedar from "
                  "November 18 to December 6."),
            ("p", "I will ask the Council to ratify this contract at its next meeting."),
            ("signature", "Tom Whitcomb, City Manager"),
        ]),
    ],
}

RECIPES = {
    "file": "sourdough_and_lentil_soup_recipes.pdf",
    "title": "Slow Food at Home: Bread and Soup",
    "subject": "A short recipe booklet: sourdough starter, country sourdough loaf, red lentil soup",
    "footer": "Slow Food at Home  |  Bread and Soup",
    "pages": [
        [
            ("title", "Slow Food at Home: Bread and Soup"),
            ("subtitle", "A small recipe booklet"),
            ("h1", "Keeping a Sourdough Starter"),
            ("p", "A sourdough starter is a living culture of wild yeasts and lactic acid bacteria, fed on flour and "
                  "water. It takes the place of commercial yeast and gives sourdough its mild tang and its open, "
                  "chewy crumb."),
            ("h2", "Starting from scratch"),
            ("p", "Mix 50 g of whole wheat or rye flour with 50 g of lukewarm water in a clean glass jar. Cover "
                  "loosely and leave at room temperature, ideally 24 to 26 °C. Every 24 hours, discard all but 50 g "
                  "and feed the rest with 50 g of flour and 50 g of water. After five to ten days the starter should "
                  "double in size within six hours of a feeding and smell pleasantly sour, like yogurt or green "
                  "apples. It is then ready to bake with."),
            ("h2", "Day-to-day care"),
            ("p", "If you bake every day, keep the starter on the counter and feed it once or twice daily. If you "
                  "bake once a week, store it in the refrigerator and feed it once a week; take it out the evening "
                  "before you bake and give it two feedings at room temperature to wake it up."),
            ("p", "A layer of grey liquid on top, called hooch, means the starter is hungry. Pour it off or stir it "
                  "back in, then feed. Pink or orange streaks, or fuzzy mould, mean the culture has spoiled and "
                  "should be thrown away."),
            ("h2", "Feeding ratios (starter : flour : water, by weight)"),
            ("table", [90, 230, 110], "lll", [
                ["Ratio", "Use it when", "Ready in"],
                ["1 : 1 : 1", "the kitchen is warm and you bake soon", "4 to 6 hours"],
                ["1 : 2 : 2", "it will sit overnight at room temperature", "8 to 10 hours"],
                ["1 : 5 : 5", "you will be away all day", "12 to 14 hours"],
            ]),
        ],
        [
            ("h1", "Country Sourdough Loaf"),
            ("small", "Makes one large loaf. Active time about 40 minutes, spread over two days."),
            ("table", [90, 250], "rl", [
                ["Amount", "Ingredient"],
                ["100 g", "active starter, fed 4 to 8 hours earlier"],
                ["375 g", "lukewarm water"],
                ["450 g", "white bread flour"],
                ["50 g", "whole wheat flour"],
                ["10 g", "fine sea salt"],
            ]),
            ("step", "1.", "Mix. In the morning, stir the starter into 350 g of the water until milky. Add both "
                           "flours and mix by hand until no dry flour remains. Cover and rest for 45 minutes; this "
                           "rest lets the flour absorb the water and makes the dough easier to work."),
            ("step", "2.", "Add salt. Sprinkle the salt over the dough with the remaining 25 g of water and squeeze "
                           "it through with your fingers until absorbed."),
            ("step", "3.", "Bulk rise. Leave the dough at warm room temperature for 4 to 5 hours. During the first "
                           "two hours, give it a set of stretches and folds every 30 minutes: with wet hands, lift "
                           "one side, stretch it up, fold it over, turn the bowl a quarter, and repeat four times. "
                           "The dough is ready when it has grown by about half and shows bubbles at the sides."),
            ("step", "4.", "Shape. Turn the dough out onto an unfloured counter, shape it into a tight round, and "
                           "place it seam side up in a basket or bowl lined with a well-floured towel."),
            ("step", "5.", "Cold proof. Cover and refrigerate for 12 to 16 hours. The long, cold rest deepens the "
                           "flavour and makes the loaf easier to score."),
            ("step", "6.", "Bake. Put a lidded cast-iron pot in the oven and heat it to 250 °C (480 °F) for 45 "
                           "minutes. Tip the cold dough onto parchment, slash the top with a razor, and lower it "
                           "into the pot. Bake covered for 20 minutes, then uncover, turn the oven down to 230 °C "
                           "(450 °F) and bake 20 to 25 minutes more, until deep brown. Cool for at least an hour "
                           "before slicing."),
        ],
        [
            ("h1", "Red Lentil Soup with Cumin and Lemon"),
            ("small", "Serves four. Ready in about 45 minutes."),
            ("table", [90, 250], "rl", [
                ["Amount", "Ingredient"],
                ["2 tbsp", "olive oil, plus more to serve"],
                ["1 large", "onion, chopped"],
                ["2", "carrots, diced"],
                ["3 cloves", "garlic, sliced"],
                ["1 1/2 tsp", "ground cumin"],
                ["1 tsp", "sweet paprika"],
                ["250 g", "red lentils, rinsed"],
                ["1.2 litres", "vegetable stock"],
                ["400 g tin", "chopped tomatoes"],
                ["1", "lemon, juiced"],
            ]),
            ("step", "1.", "Warm the oil in a large pot over medium heat. Add the onion and carrots with a pinch of "
                           "salt and cook, stirring now and then, for 8 to 10 minutes until soft and lightly golden."),
            ("step", "2.", "Stir in the garlic, cumin and paprika and cook for one minute, until fragrant. Toasting "
                           "the spices in oil brings out their flavour."),
            ("step", "3.", "Add the lentils, stock and tomatoes. Bring to a boil, then lower the heat, partly cover, "
                           "and simmer for 25 minutes, stirring from time to time, until the lentils have fallen "
                           "apart completely."),
            ("step", "4.", "Blend about half of the soup with a stick blender for a creamy texture that still has "
                           "some body, or puree all of it if you like it smooth. Add water if it is too thick."),
            ("step", "5.", "Stir in the lemon juice, season with salt and pepper, and serve with chopped parsley "
                           "and a swirl of olive oil or yogurt."),
            ("h2", "Tips"),
            ("p", "Red lentils need no soaking and cook much faster than green or brown ones, which hold their "
                  "shape and will not give the same silky result. The soup keeps for four days in the refrigerator "
                  "and freezes well for three months; it thickens as it stands, so loosen it with water when you "
                  "reheat it. A slice of the country sourdough loaf makes it a full meal."),
        ],
    ],
}

DOCUMENTS = [NORTHWIND, BIRDS, ESPRESSO, LFP, COUNCIL, RECIPES]


# ---------------------------------------------------------------------------
# Layout: a tiny flow writer on top of pymupdf's insert_text.
# ---------------------------------------------------------------------------

def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy word wrap; explicit newlines start new lines."""
    lines = []
    for para in text.split("\n"):
        line = ""
        for word in para.split():
            trial = f"{line} {word}" if line else word
            if line and pymupdf.get_text_length(trial, fontname=font, fontsize=size) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


class PageWriter:
    def __init__(self, page: pymupdf.Page, styles: dict = STYLES):
        self.page = page
        self.styles = styles
        self.y = MARGIN_TOP

    def _check(self, needed: float) -> None:
        if self.y + needed > PAGE_H - MARGIN_BOTTOM:
            raise ValueError(f"content overflows page {self.page.number}; shorten it or split the page")

    def text(self, style: str, text: str, x: float = MARGIN_X, width: float = TEXT_W) -> None:
        font, size, leading, before, after, grey = self.styles[style]
        if self.y > MARGIN_TOP:
            self.y += before
        lines = wrap(text, font, size, width)
        self._check(leading * len(lines))
        for line in lines:
            self.y += leading
            self.page.insert_text((x, self.y - leading * 0.25), line, fontname=font, fontsize=size,
                                  color=(grey, grey, grey))
        self.y += after

    def step(self, label: str, text: str) -> None:
        font, size, leading, _, after, _ = self.styles["p"]
        lines = wrap(text, font, size, TEXT_W - 20)
        self._check(leading * len(lines))
        self.page.insert_text((MARGIN_X, self.y + leading * 0.75), label, fontname=BOLD, fontsize=size)
        self.text("p", text, x=MARGIN_X + 20, width=TEXT_W - 20)

    def table(self, widths: list[float], aligns: str, rows: list[list[str]]) -> None:
        size, leading, pad = 9.5, 12.5, 4
        self.y += 2
        self._rule(0.8)
        for r, row in enumerate(rows):
            font = BOLD if r == 0 else BODY
            cells = [wrap(cell, font, size, w - 2 * pad) for cell, w in zip(row, widths)]
            height = leading * max(len(c) for c in cells) + 4
            self._check(height + 2)
            x = MARGIN_X
            for lines, w, align in zip(cells, widths, aligns):
                for i, line in enumerate(lines):
                    tx = x + pad
                    if align == "r":
                        tx = x + w - pad - pymupdf.get_text_length(line, fontname=font, fontsize=size)
                    self.page.insert_text((tx, self.y + 2 + leading * (i + 1) - 3), line,
                                          fontname=font, fontsize=size)
                x += w
            self.y += height
            self._rule(0.5 if r == 0 else 0.15, grey=0.0 if r in (0, len(rows) - 1) else 0.6)
        self.y += 8

    def _rule(self, width: float, grey: float = 0.0) -> None:
        self.page.draw_line((MARGIN_X, self.y), (PAGE_W - MARGIN_X, self.y),
                            color=(grey, grey, grey), width=width)

    def footer(self, text: str, number: int, total: int) -> None:
        y = PAGE_H - MARGIN_BOTTOM / 2
        self.page.insert_text((MARGIN_X, y), text, fontname=BODY, fontsize=8, color=(0.4, 0.4, 0.4))
        label = f"Page {number} of {total}"
        w = pymupdf.get_text_length(label, fontname=BODY, fontsize=8)
        self.page.insert_text((PAGE_W - MARGIN_X - w, y), label, fontname=BODY, fontsize=8,
                              color=(0.4, 0.4, 0.4))


def write_page(page: pymupdf.Page, blocks: list, styles: dict = STYLES) -> None:
    w = PageWriter(page, styles)
    for block in blocks:
        kind = block[0]
        if kind == "step":
            w.step(block[1], block[2])
        elif kind == "table":
            w.table(block[1], block[2], block[3])
        else:
            w.text(kind, block[1])


# ---------------------------------------------------------------------------
# The image-only page: render with Pillow at 150 dpi, embed as a picture.
# ---------------------------------------------------------------------------

DPI = 150
FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
             Path("/usr/share/fonts/TTF"), Path("/Library/Fonts"), Path("C:/Windows/Fonts")]


def _find_font(name: str) -> Path | None:
    for d in FONT_DIRS:
        if (d / name).is_file():
            return d / name
    return None


def render_scan_pillow(blocks: list) -> bytes | None:
    """PNG of a letter page at 150 dpi with the blocks drawn in DejaVu Sans; None if no font/Pillow."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return None
    regular, bold = _find_font("DejaVuSans.ttf"), _find_font("DejaVuSans-Bold.ttf")
    if not regular or not bold:
        return None
    px = DPI / 72  # pixels per point
    W, H = round(PAGE_W * px), round(PAGE_H * px)
    img = Image.new("L", (W, H), 255)
    draw = ImageDraw.Draw(img)
    fonts = {  # style: (font, pixel size, line height in px, gap after)
        "h": (ImageFont.truetype(str(bold), round(16 * px)), round(22 * px), round(6 * px)),
        "small": (ImageFont.truetype(str(regular), round(14 * px)), round(19 * px), round(14 * px)),
        "title": (ImageFont.truetype(str(bold), round(22 * px)), round(28 * px), round(12 * px)),
        "p": (ImageFont.truetype(str(regular), round(14 * px)), round(20.5 * px), round(12 * px)),
    }
    left, right, y = round(72 * px), W - round(72 * px), round(72 * px)
    for style, text in blocks:
        if style == "rule":
            draw.line((left, y, right, y), fill=0, width=3)
            y += round(14 * px)
            continue
        if style == "signature":  # a hand-drawn-looking squiggle above the printed name
            y += round(10 * px)
            pts = [(left + i * 6, y + round(18 * px - 14 * px * abs(((i % 14) - 7) / 7.0)) + (i % 5) * 2)
                   for i in range(0, 60)]
            draw.line(pts, fill=20, width=4, joint="curve")
            y += round(34 * px)
            text_font, line_h, _ = fonts["p"]
            draw.text((left, y), text, font=text_font, fill=0)
            continue
        font, line_h, after = fonts[style]
        for para in text.split("\n"):
            line = ""
            for word in para.split():
                trial = f"{line} {word}" if line else word
                if line and draw.textlength(trial, font=font) > right - left:
                    draw.text((left, y), line, font=font, fill=0)
                    y += line_h
                    line = word
                else:
                    line = trial
            draw.text((left, y), line, font=font, fill=0)
            y += line_h
        y += after
    if y > H - round(60 * px):
        raise ValueError("scanned page content overflows")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def render_scan_pymupdf(blocks: list) -> bytes:
    """Fallback: lay the blocks out as text with pymupdf, rasterise at 150 dpi, return PNG bytes."""
    tmp = pymupdf.open()
    page = tmp.new_page(width=PAGE_W, height=PAGE_H)
    mapped = []
    for style, text in blocks:
        if style == "signature":
            mapped.append(("p", "\n\n" + text))
        elif style != "rule":
            mapped.append(({"h": "h2", "title": "title"}.get(style, "p"), text))
    large = {k: (f, max(s, 14), max(lead, 19), b, a, 0.0) for k, (f, s, lead, b, a, _) in STYLES.items()}
    write_page(page, mapped, large)
    png = page.get_pixmap(dpi=DPI, colorspace=pymupdf.csGRAY).tobytes("png")
    tmp.close()
    return png


# ---------------------------------------------------------------------------

def build(doc_spec: dict, out_dir: Path) -> Path:
    doc = pymupdf.open()
    pages = doc_spec["pages"]
    for number, blocks in enumerate(pages, 1):
        page = doc.new_page(width=PAGE_W, height=PAGE_H)
        if isinstance(blocks, tuple) and blocks[0] == "image":
            png = render_scan_pillow(blocks[1]) or render_scan_pymupdf(blocks[1])
            page.insert_image(page.rect, stream=png)
        else:
            write_page(page, blocks)
            PageWriter(page).footer(doc_spec["footer"], number, len(pages))
    doc.set_metadata({
        "title": doc_spec["title"],
        "author": AUTHOR,
        "subject": doc_spec["subject"],
        "keywords": "docpress, sample corpus, fictional",
        "creator": CREATOR,
        "producer": "PyMuPDF",
        "creationDate": FIXED_DATE,
        "modDate": FIXED_DATE,
    })
    path = out_dir / doc_spec["file"]
    doc.save(path, garbage=4, deflate=True, no_new_id=True)
    doc.close()
    return path


def main(argv: list[str]) -> None:
    out_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "sample"
    out_dir.mkdir(parents=True, exist_ok=True)
    for spec in DOCUMENTS:
        path = build(spec, out_dir)
        print(f"{path}  ({len(spec['pages'])} pages, {path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main(sys.argv)
