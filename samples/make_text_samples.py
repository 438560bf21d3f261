"""Writes the bundled translation and text samples (sentences written for polyembed, released with it).

Run from samples/: ``python make_text_samples.py``.
"""

import json

# (english, german, french, spanish)
S = [
("The chain needs oil after a rainy ride.", "Die Kette braucht nach einer Regenfahrt Öl.", "La chaîne a besoin d'huile après une sortie sous la pluie.", "La cadena necesita aceite después de un paseo bajo la lluvia."),
("My front tyre is flat again.", "Mein Vorderreifen ist schon wieder platt.", "Mon pneu avant est encore à plat.", "Mi neumático delantero está pinchado otra vez."),
("How much air should I put in the tyres?", "Wie viel Luft sollte ich in die Reifen pumpen?", "Combien d'air dois-je mettre dans les pneus ?", "¿Cuánto aire debo poner en los neumáticos?"),
("The brakes squeal when they are wet.", "Die Bremsen quietschen, wenn sie nass sind.", "Les freins grincent quand ils sont mouillés.", "Los frenos chirrían cuando están mojados."),
("I ride to work every morning.", "Ich fahre jeden Morgen mit dem Rad zur Arbeit.", "Je vais au travail à vélo tous les matins.", "Voy en bicicleta al trabajo todas las mañanas."),
("The bicycle shop opens at nine.", "Der Fahrradladen öffnet um neun Uhr.", "Le magasin de vélos ouvre à neuf heures.", "La tienda de bicicletas abre a las nueve."),
("This road is too steep for me.", "Diese Straße ist mir zu steil.", "Cette route est trop raide pour moi.", "Esta carretera es demasiado empinada para mí."),
("We cycled along the river for three hours.", "Wir sind drei Stunden am Fluss entlanggeradelt.", "Nous avons roulé le long de la rivière pendant trois heures.", "Pedaleamos junto al río durante tres horas."),
("The wheel rubs against the brake pad.", "Das Rad schleift am Bremsbelag.", "La roue frotte contre le patin de frein.", "La rueda roza contra la pastilla de freno."),
("Can you lend me a pump?", "Kannst du mir eine Pumpe leihen?", "Peux-tu me prêter une pompe ?", "¿Me puedes prestar una bomba?"),
("A helmet protects your head in a crash.", "Ein Helm schützt bei einem Sturz den Kopf.", "Un casque protège la tête en cas de chute.", "Un casco protege la cabeza en una caída."),
("The weather is perfect for a long ride.", "Das Wetter ist perfekt für eine lange Tour.", "Le temps est parfait pour une longue sortie.", "El tiempo es perfecto para un paseo largo."),
("My legs are tired after the climb.", "Nach dem Anstieg sind meine Beine müde.", "Mes jambes sont fatiguées après la montée.", "Tengo las piernas cansadas después de la subida."),
("The gears skip when I pedal hard.", "Die Gänge springen, wenn ich kräftig trete.", "Les vitesses sautent quand je pédale fort.", "Las marchas saltan cuando pedaleo fuerte."),
("Lock your bike when you leave it outside.", "Schließ dein Fahrrad ab, wenn du es draußen lässt.", "Attache ton vélo quand tu le laisses dehors.", "Ponle candado a tu bicicleta cuando la dejes fuera."),
("The city built a new cycle lane.", "Die Stadt hat einen neuen Radweg gebaut.", "La ville a construit une nouvelle piste cyclable.", "La ciudad construyó un nuevo carril bici."),
("I need new lights for the winter.", "Ich brauche neue Lampen für den Winter.", "J'ai besoin de nouvelles lumières pour l'hiver.", "Necesito luces nuevas para el invierno."),
("The race starts early tomorrow.", "Das Rennen beginnt morgen früh.", "La course commence tôt demain.", "La carrera empieza temprano mañana."),
("She repaired the puncture in five minutes.", "Sie hat den Platten in fünf Minuten geflickt.", "Elle a réparé la crevaison en cinq minutes.", "Ella reparó el pinchazo en cinco minutos."),
("Carbon frames are light but fragile.", "Carbonrahmen sind leicht, aber empfindlich.", "Les cadres en carbone sont légers mais fragiles.", "Los cuadros de carbono son ligeros pero frágiles."),
("The saddle is too high.", "Der Sattel ist zu hoch.", "La selle est trop haute.", "El sillín está demasiado alto."),
("Drink water before you get thirsty.", "Trink Wasser, bevor du Durst bekommst.", "Bois de l'eau avant d'avoir soif.", "Bebe agua antes de tener sed."),
("The mountain pass was closed because of snow.", "Der Pass war wegen Schnee gesperrt.", "Le col était fermé à cause de la neige.", "El puerto de montaña estaba cerrado por la nieve."),
("My children learned to ride this summer.", "Meine Kinder haben diesen Sommer Radfahren gelernt.", "Mes enfants ont appris à faire du vélo cet été.", "Mis hijos aprendieron a montar en bicicleta este verano."),
("The train allows bicycles in the last carriage.", "Im letzten Wagen des Zuges sind Fahrräder erlaubt.", "Le train accepte les vélos dans la dernière voiture.", "El tren admite bicicletas en el último vagón."),
("Clean the chain before you oil it.", "Reinige die Kette, bevor du sie ölst.", "Nettoie la chaîne avant de la huiler.", "Limpia la cadena antes de engrasarla."),
("The wind was against us all day.", "Der Wind war den ganzen Tag gegen uns.", "Le vent était contre nous toute la journée.", "El viento estuvo en contra todo el día."),
("I bought a used bike for my daughter.", "Ich habe ein gebrauchtes Fahrrad für meine Tochter gekauft.", "J'ai acheté un vélo d'occasion pour ma fille.", "Compré una bicicleta usada para mi hija."),
("The spoke broke on the way home.", "Auf dem Heimweg ist die Speiche gebrochen.", "Le rayon s'est cassé sur le chemin du retour.", "El radio se rompió de camino a casa."),
("Cycling is good for your heart.", "Radfahren ist gut für das Herz.", "Le vélo est bon pour le cœur.", "Montar en bicicleta es bueno para el corazón."),
]
langs = ["eng", "deu", "fra", "spa"]
for i, lang in enumerate(langs[1:], 1):
    with open(f"translation/cycling.{lang}-eng.tsv", "w", encoding="utf-8") as f:
        for s in S:
            f.write(f"{s[i]}\t{s[0]}\t{lang}\teng\n")
# Pretraining text: per language a few documents (sentence per line, blank line between documents).
with open("text/cycling.multilingual.txt", "w", encoding="utf-8") as f:
    for i in range(len(langs)):
        for d in range(0, len(S), 6):
            for s in S[d:d + 6]:
                f.write(s[i] + "\n")
            f.write("\n")
with open("text/cycling.multilingual.jsonl", "w", encoding="utf-8") as f:
    for i, lang in enumerate(langs):
        for d in range(0, len(S), 6):
            f.write(json.dumps({"text": " ".join(s[i] for s in S[d:d + 6]), "language": lang}, ensure_ascii=False) + "\n")
